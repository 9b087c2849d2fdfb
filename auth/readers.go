package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"os"

	"github.com/flowlog/flowlog/filewatch"
)

// The readers file says who may read the collector's HTTP API (flows,
// aggregates, the live tail, the web page's data) and which networks each
// sees:
//
//	readers:
//	  - name: noc                      # for logs
//	    token_sha256: "9f86d0..."      # printf %s "$TOKEN" | sha256sum
//	    networks: ["*"]                # every network, or a list: [mesh1, mesh2]
//	    role: admin                    # read (default) | admin (also /metrics)
//
// A reader presents its token as `Authorization: Bearer <token>`. Like the
// identities file, it is read strictly (unknown keys are errors, every
// problem named by line) and reloaded when it changes (WatchReaders).

// Role is what a reader may do beyond reading flows.
type Role uint8

const (
	RoleRead  Role = iota // flows, aggregates, the live tail, the OpenAPI document
	RoleAdmin             // all of that, and the collector's own metrics (/metrics)
)

func (r Role) String() string {
	if r == RoleAdmin {
		return "admin"
	}
	return "read"
}

// Reader is one entry of the readers file.
type Reader struct {
	Name     string
	Networks []string // nil: every network ("*")
	Role     Role
	Index    int // position in the file (readers[Index]), for messages

	token [sha256.Size]byte // SHA-256 of the bearer token
}

// AllowsNetwork reports whether the reader may see flows of network n.
func (r *Reader) AllowsNetwork(n string) bool {
	return allowsNetwork(r.Networks, n)
}

// String names the reader in logs and messages.
func (r *Reader) String() string {
	return fmt.Sprintf("reader %q (readers[%d])", r.Name, r.Index)
}

// Readers is a parsed, valid readers file.
type Readers struct {
	File    string
	Readers []*Reader
}

// ByToken finds the reader of a bearer token (none in a nil set). Every
// reader's hash is compared in constant time, so the answer's timing says
// nothing about which hash (or how much of one) matched.
func (s *Readers) ByToken(token string) (*Reader, bool) {
	if s == nil {
		return nil, false
	}
	h := sha256.Sum256([]byte(token))
	var found *Reader
	for _, r := range s.Readers {
		if subtle.ConstantTimeCompare(h[:], r.token[:]) == 1 {
			found = r
		}
	}
	return found, found != nil
}

// LoadReaders reads and parses the readers file at path.
func LoadReaders(path string) (*Readers, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("readers: %w", err)
	}
	return ParseReaders(path, data)
}

// readersYAML is the YAML shape of the readers file.
type readersYAML struct {
	Readers []readerEntry `yaml:"readers"`
}

type readerEntry struct {
	Name        string    `yaml:"name"`
	TokenSHA256 string    `yaml:"token_sha256"`
	Networks    anyOrList `yaml:"networks"`
	Role        string    `yaml:"role"`
}

var readersFile = listFile{
	key:       "readers",
	emptyHint: "want `readers:` and a list; `readers: []` admits nobody",
	entryType: "auth.readerEntry",
	entryKeys: "name, token_sha256, networks, role",
	typeNames: map[string]string{"string": "a string", "[]auth.readerEntry": "a list of readers",
		"auth.readersYAML": "a mapping with `readers:`", "auth.readerEntry": "a mapping (name, token_sha256, networks, role)"},
}

// ParseReaders parses and validates a readers file; name is used in
// messages. All problems found are returned, joined, each as
// "name:line: message".
func ParseReaders(name string, data []byte) (*Readers, error) {
	var f readersYAML
	lines, err := readersFile.decode(name, data, &f)
	if err != nil {
		return nil, err
	}
	p := &problems{name: name, key: "readers", lines: lines}
	s := &Readers{File: name}
	tokens := map[[sha256.Size]byte]int{}
	names := map[string]int{}
	for i, e := range f.Readers {
		errorf := func(format string, args ...any) { p.add(i, format, args...) }
		r := &Reader{Name: e.Name, Index: i}
		switch {
		case e.Name == "":
			errorf("name is missing (it names the reader in logs)")
		case len(e.Name) > maxIDLen:
			errorf("name is %d bytes, longer than %d", len(e.Name), maxIDLen)
		default:
			if j, dup := names[e.Name]; dup {
				errorf("name %q is already used by readers[%d]", e.Name, j)
			}
			names[e.Name] = i
		}
		if e.TokenSHA256 == "" {
			errorf("token_sha256 is missing (printf %%s \"$TOKEN\" | sha256sum)")
		} else if h, err := tokenHash(e.TokenSHA256); err != nil {
			errorf("%v", err)
		} else {
			r.token = h
			if j, dup := tokens[h]; dup {
				errorf("token_sha256 is the same as readers[%d]'s: a token must map to one reader", j)
			}
			tokens[h] = i
		}
		// Unlike an agent identity, a reader names its networks explicitly:
		// a forgotten line must not mean "every network".
		if !e.Networks.star && len(e.Networks.names) == 0 {
			errorf(`networks is missing or empty: give ["*"] for every network, or a list of network ids`)
		}
		r.Networks = e.Networks.check(errorf)
		switch e.Role {
		case "", "read":
			r.Role = RoleRead
		case "admin":
			r.Role = RoleAdmin
		default:
			errorf("role must be read or admin, got %q", e.Role)
		}
		s.Readers = append(s.Readers, r)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return s, nil
}

// WatchReaders calls onChange with each new valid readers file at path
// until ctx ends (then it returns nil); see filewatch.Watch. A deleted
// file reads as `readers: []` (it admits nobody: a deleted file must not
// grant more than an empty one); an unreadable or invalid file is logged
// (warn) and ignored: the previous readers stay in force. ready, if not nil, is called once the watch is in place; the
// baseline is the file's content at that moment (call LoadReaders just
// before).
func WatchReaders(ctx context.Context, path string, log *slog.Logger, onChange func(*Readers), ready func()) error {
	return filewatch.Watch(ctx, path, log, ParseReaders, onChange, ready, filewatch.What("readers"), filewatch.MissingAs("readers: []\n"))
}
