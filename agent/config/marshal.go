package config

import (
	"net/netip"

	"go.yaml.in/yaml/v3"

	"github.com/flowlog/flowlog"
)

// The file's shape, for Marshal; key order is the documented order.
type fileConfig struct {
	Host         fileHost          `yaml:"host"`
	Networks     []fileNetwork     `yaml:"networks"`
	Participants []fileParticipant `yaml:"participants,omitempty"`
	Drop         *fileDrop         `yaml:"drop,omitempty"`
}

type fileHost struct {
	ID   string `yaml:"id"`
	Name string `yaml:"name"`
}

type fileNetwork struct {
	ID        string   `yaml:"id"`
	Addresses []string `yaml:"addresses,flow"`
	CIDRs     []string `yaml:"cidrs,flow"`
}

type fileParticipant struct {
	Match string `yaml:"match"`
	Type  string `yaml:"type"`
	ID    string `yaml:"id"`
	Name  string `yaml:"name,omitempty"`
}

type fileDrop struct {
	Presets   []string `yaml:"presets,omitempty,flow"`
	Protocols []any    `yaml:"protocols,omitempty,flow"`
	Ports     []uint16 `yaml:"ports,omitempty,flow"`
	CIDRs     []string `yaml:"cidrs,omitempty,flow"`
}

// Marshal returns c in the file format; Parse of the result gives back an
// equal Config. Single-address matches are written as addresses, known
// protocols by name.
func (c *Config) Marshal() ([]byte, error) {
	f := fileConfig{Host: fileHost{ID: c.Host.ID, Name: c.Host.Name}}
	for _, n := range c.Networks {
		fn := fileNetwork{ID: n.ID}
		for _, a := range n.Addresses {
			fn.Addresses = append(fn.Addresses, a.String())
		}
		for _, p := range n.CIDRs {
			fn.CIDRs = append(fn.CIDRs, p.String())
		}
		f.Networks = append(f.Networks, fn)
	}
	for _, p := range c.Participants {
		f.Participants = append(f.Participants, fileParticipant{
			Match: matchString(p.Match), Type: p.Type.String(), ID: p.ID, Name: p.Name})
	}
	d := c.Drop
	if len(d.Presets)+len(d.Protocols)+len(d.Ports)+len(d.CIDRs) > 0 {
		fd := &fileDrop{Presets: d.Presets, Ports: d.Ports}
		for _, p := range d.Protocols {
			fd.Protocols = append(fd.Protocols, protocolValue(p))
		}
		for _, p := range d.CIDRs {
			fd.CIDRs = append(fd.CIDRs, matchString(p))
		}
		f.Drop = fd
	}
	return yaml.Marshal(&f)
}

func matchString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

func protocolValue(p uint8) any {
	if name, ok := flowlog.Protocols[p]; ok {
		return name
	}
	return int(p)
}
