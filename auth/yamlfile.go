package auth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// The identities and readers files share a shape: a mapping with one key
// holding a list of entries, read strictly (unknown keys are errors), every
// problem reported as "file:line: message". This file holds what they share.

// listFile describes one such file, for its messages.
type listFile struct {
	key       string            // the top-level key: "identities", "readers"
	emptyHint string            // what an empty file should hold
	entryType string            // Go type of an entry ("auth.entry"), whose keys are...
	entryKeys string            // ... these ("host_id, networks, ...")
	typeNames map[string]string // Go type -> what the file should hold there
}

// decode decodes data strictly into v (a struct with the list under
// lf.key) and returns the line of each entry of the list.
func (lf *listFile) decode(name string, data []byte, v any) ([]int, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%s: empty %s file (%s)", name, lf.key, lf.emptyHint)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return nil, lf.yamlError(name, err)
	}
	if err := dec.Decode(new(yaml.Node)); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: more than one YAML document", name)
	}
	// A second pass, as a node tree, only to know each entry's line.
	var doc yaml.Node
	_ = yaml.Unmarshal(data, &doc)
	list := topValue(&doc, lf.key)
	if list == nil {
		return nil, fmt.Errorf("%s: no `%s:` list", name, lf.key)
	}
	if list.Kind != yaml.SequenceNode {
		return nil, nil
	}
	lines := make([]int, len(list.Content))
	for i, c := range list.Content {
		lines[i] = c.Line
	}
	return lines, nil
}

var (
	yamlLine     = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unknownField = regexp.MustCompile(`field (\S+) not found in type (\S+)`)
	wrongType    = regexp.MustCompile("cannot unmarshal !!(\\w+) (`[^`]*` )?into (\\S+)")
)

// yamlError turns the YAML decoder's errors into "name:line: message" in the
// file's own terms.
func (lf *listFile) yamlError(name string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs := make([]string, len(te.Errors))
		for i, m := range te.Errors {
			if sm := unknownField.FindStringSubmatch(m); sm != nil {
				want := lf.key
				if sm[2] == lf.entryType {
					want = lf.entryKeys
				}
				m = strings.Replace(m, sm[0], "unknown key "+sm[1]+" (want "+want+")", 1)
			}
			if sm := wrongType.FindStringSubmatch(m); sm != nil {
				want, ok := lf.typeNames[sm[3]]
				if !ok {
					want = sm[3]
				}
				m = strings.Replace(m, sm[0], "want "+want+", got !!"+sm[1]+" "+strings.TrimSpace(sm[2]), 1)
				m = strings.TrimSpace(m)
			}
			msgs[i] = name + ":" + strings.TrimPrefix(m, "line ")
		}
		return errors.New(strings.Join(msgs, "\n"))
	}
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("%s:%s: %s", name, m[1], m[2])
	}
	return fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "yaml: "))
}

// topValue finds the value of a top-level key in a parsed document.
func topValue(doc *yaml.Node, key string) *yaml.Node {
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == key {
			return doc.Content[i+1]
		}
	}
	return nil
}

// problems collects the errors of a file's entries, each as
// "name:line: key[i]: message".
type problems struct {
	name, key string
	lines     []int
	errs      []error
}

func (p *problems) add(i int, format string, args ...any) {
	line := ""
	if i < len(p.lines) {
		line = ":" + strconv.Itoa(p.lines[i])
	}
	p.errs = append(p.errs, fmt.Errorf("%s%s: %s[%d]: %s", p.name, line, p.key, i, fmt.Sprintf(format, args...)))
}

func (p *problems) err() error { return errors.Join(p.errs...) }

// list is a YAML sequence of strings, or a single string.
type list []string

func (l *list) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil
		}
		*l = list{n.Value}
		return nil
	case yaml.SequenceNode:
		out := make(list, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode || c.Tag == "!!null" {
				return fmt.Errorf("line %d: want a string", c.Line)
			}
			out = append(out, c.Value)
		}
		*l = out
		return nil
	}
	return fmt.Errorf("line %d: want a string or a list of strings", n.Line)
}

// anyOrList is a network list where "*" (alone, or as the only item) means
// any network.
type anyOrList struct {
	names []string
	star  bool
	set   bool
}

func (a *anyOrList) UnmarshalYAML(n *yaml.Node) error {
	var l list
	if err := l.UnmarshalYAML(n); err != nil {
		return err
	}
	a.set = true
	for _, s := range l {
		if s == "*" {
			a.star = true
		} else {
			a.names = append(a.names, s)
		}
	}
	return nil
}

// check reports a "*" mixed with names, empty and repeated names, and
// returns the names (nil for "*" or no names at all).
func (a *anyOrList) check(report func(format string, args ...any)) []string {
	if a.star && len(a.names) > 0 {
		report(`networks: "*" (any network) cannot be combined with names`)
	}
	if a.star || len(a.names) == 0 {
		return nil
	}
	seen := map[string]bool{}
	for _, n := range a.names {
		if n == "" {
			report("networks: empty network id")
		} else if seen[n] {
			report("networks: %q listed twice", n)
		}
		seen[n] = true
	}
	return a.names
}

// allowsNetwork reports whether networks, as check returns them (nil: any
// network), admits network n.
func allowsNetwork(networks []string, n string) bool {
	return networks == nil || slices.Contains(networks, n)
}

// tokenHash parses a token_sha256 value: 64 hex digits, either case.
func tokenHash(s string) ([sha256.Size]byte, error) {
	var h [sha256.Size]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return h, fmt.Errorf("token_sha256 must be 64 hex digits (printf %%s \"$TOKEN\" | sha256sum), got %q", s)
	}
	copy(h[:], b)
	return h, nil
}
