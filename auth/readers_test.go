package auth

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseReaders(t *testing.T) {
	doc := `# who reads the API
readers:
  - name: noc
    token_sha256: "` + HashToken("noc-token") + `"
    networks: ["*"]
    role: admin
  - name: mesh-team
    token_sha256: ` + strings.ToUpper(HashToken("team-token")) + `
    networks: [mesh1, mesh2]
  - {name: one, token_sha256: ` + HashToken("one") + `, networks: mesh3, role: read}
`
	s, err := ParseReaders("readers.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Readers) != 3 {
		t.Fatalf("%d readers", len(s.Readers))
	}
	noc, team, one := s.Readers[0], s.Readers[1], s.Readers[2]
	if noc.Name != "noc" || noc.Networks != nil || noc.Role != RoleAdmin || !noc.AllowsNetwork("anything") {
		t.Errorf("noc: %+v", noc)
	}
	if team.Role != RoleRead || !slices.Equal(team.Networks, []string{"mesh1", "mesh2"}) ||
		!team.AllowsNetwork("mesh2") || team.AllowsNetwork("mesh3") || team.String() != `reader "mesh-team" (readers[1])` {
		t.Errorf("mesh-team: %+v", team)
	}
	if one.Role != RoleRead || !slices.Equal(one.Networks, []string{"mesh3"}) {
		t.Errorf("one: %+v", one)
	}
	for token, want := range map[string]*Reader{"noc-token": noc, "team-token": team, "one": one, "nope": nil, "": nil} {
		got, ok := s.ByToken(token)
		if got != want || ok != (want != nil) {
			t.Errorf("ByToken(%q) = %v %v, want %v", token, got, ok, want)
		}
	}
	if RoleAdmin.String() != "admin" || RoleRead.String() != "read" {
		t.Error("role names")
	}
	// Explicitly nobody is valid (and admits nobody).
	if s, err := ParseReaders("r.yaml", []byte("readers: []\n")); err != nil || len(s.Readers) != 0 {
		t.Errorf("readers: []: %v %v", s, err)
	}
}

func TestParseReadersErrorsNameLineAndField(t *testing.T) {
	h := HashToken("t")
	ok := "    token_sha256: " + h + "\n    networks: ['*']\n"
	cases := []struct{ in, want string }{
		{"", "r.yaml: empty readers file"},
		{"identities: []\n", "r.yaml:1: unknown key identities (want readers)"},
		{"readers:\n  - name: a\n" + ok + "    token: x\n", "r.yaml:5: unknown key token (want name, token_sha256, networks, role)"},
		{"readers:\n  - name: a\n" + ok + "  - token_sha256: " + HashToken("u") + "\n    networks: [m]\n", "r.yaml:5: readers[1]: name is missing"},
		{"readers:\n  - name: a\n    networks: ['*']\n", "r.yaml:2: readers[0]: token_sha256 is missing"},
		{"readers:\n  - name: a\n    token_sha256: abc\n    networks: ['*']\n", "r.yaml:2: readers[0]: token_sha256 must be 64 hex digits"},
		{"readers:\n  - name: a\n    token_sha256: " + h + "\n", `r.yaml:2: readers[0]: networks is missing or empty: give ["*"]`},
		{"readers:\n  - {name: a, token_sha256: " + h + ", networks: []}\n", "readers[0]: networks is missing or empty"},
		{"readers:\n  - {name: a, token_sha256: " + h + ", networks: ['*', m]}\n", `networks: "*" (any network) cannot be combined`},
		{"readers:\n  - {name: a, token_sha256: " + h + ", networks: [m, m]}\n", `networks: "m" listed twice`},
		{"readers:\n  - {name: a, token_sha256: " + h + ", networks: [m, '']}\n", `networks: empty network id`},
		{"readers:\n  - {name: a, token_sha256: " + h + ", networks: [m], role: root}\n", `r.yaml:2: readers[0]: role must be read or admin, got "root"`},
		{"readers:\n  - {name: a, token_sha256: " + h + ", networks: [m]}\n  - {name: a, token_sha256: " + HashToken("u") + ", networks: [m]}\n",
			`r.yaml:3: readers[1]: name "a" is already used by readers[0]`},
		{"readers:\n  - {name: a, token_sha256: " + h + ", networks: [m]}\n  - {name: b, token_sha256: " + strings.ToUpper(h) + ", networks: [m]}\n",
			`r.yaml:3: readers[1]: token_sha256 is the same as readers[0]'s`},
		{"readers:\n  - {name: a, token_sha256: " + h + ", networks: {a: b}}\n", "r.yaml:2: want a string or a list of strings"},
		{"readers: {name: a}\n", "r.yaml:1: want a list of readers"},
		{"readers:\n  - [a]\n", "r.yaml:2: want a mapping (name, token_sha256, networks, role)"},
		{"readers: [\n", "r.yaml:"},
		{"readers: []\n---\nreaders: []\n", "more than one YAML document"},
		{"- a\n", "want a mapping with `readers:`"},
	}
	for _, tc := range cases {
		_, err := ParseReaders("r.yaml", []byte(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseReaders(%q): want error containing %q, got %v", tc.in, tc.want, err)
		}
	}
	// Every problem is reported, not only the first.
	_, err := ParseReaders("r.yaml", []byte("readers:\n  - {name: a, networks: [m]}\n  - {name: b, token_sha256: "+h+", role: x}\n"))
	if err == nil || strings.Count(err.Error(), "\n") != 2 {
		t.Errorf("want three problems, got %v", err)
	}
}

func TestLoadReaders(t *testing.T) {
	if _, err := LoadReaders(filepath.Join(t.TempDir(), "nope.yaml")); err == nil || !strings.HasPrefix(err.Error(), "readers: ") {
		t.Errorf("missing file: %v", err)
	}
}

func TestWatchReadersReloads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "readers.yaml")
	write := func(s string) {
		t.Helper()
		tmp := filepath.Join(dir, ".readers.tmp")
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	entry := func(name, token string) string {
		return "readers:\n  - {name: " + name + ", token_sha256: " + HashToken(token) + ", networks: ['*']}\n"
	}
	write(entry("a", "one"))
	got := make(chan *Readers, 10)
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- WatchReaders(ctx, path, slog.New(slog.NewTextHandler(io.Discard, nil)), func(s *Readers) { got <- s }, func() { close(ready) })
	}()
	<-ready
	next := func() *Readers {
		t.Helper()
		select {
		case s := <-got:
			return s
		case <-time.After(5 * time.Second):
			t.Fatal("no reload within 5s")
			return nil
		}
	}
	write(entry("b", "two"))
	if s := next(); len(s.Readers) != 1 || s.Readers[0].Name != "b" {
		t.Fatalf("first reload: %+v", s.Readers)
	}
	write("readers:\n  - {name: c, token_sha256: " + HashToken("three") + "}\n") // invalid: no networks
	select {
	case s := <-got:
		t.Fatalf("invalid file applied: %+v", s.Readers)
	case <-time.After(500 * time.Millisecond):
	}
	write(entry("d", "four"))
	if s := next(); s.Readers[0].Name != "d" {
		t.Fatalf("second reload: %+v", s.Readers)
	}
	// Deleted: no more than an empty file grants, not the last version.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if s := next(); len(s.Readers) != 0 {
		t.Fatalf("deleted file: %+v, want no readers", s.Readers)
	} else if _, ok := s.ByToken("four"); ok {
		t.Fatal("a deleted readers file still grants its tokens")
	}
	write(entry("d", "four")) // restored as it was: in force again
	if s := next(); s.Readers[0].Name != "d" {
		t.Fatalf("restored: %+v", s.Readers)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestHTTPPolicy(t *testing.T) {
	for _, tc := range []struct {
		p        HTTPPolicy
		loopback bool
		want     string
	}{
		{HTTPPolicy{}, true, ""},
		{HTTPPolicy{}, false, "--http-addr 0.0.0.0:8080 is not a loopback address: the HTTP API there would show every flow to anyone"},
		{HTTPPolicy{Readers: true}, false, ""},
		{HTTPPolicy{AllowAnonymous: true}, false, ""},
		{HTTPPolicy{Readers: true, AllowAnonymous: true}, true, "--readers and --http-allow-anonymous contradict each other"},
	} {
		err := tc.p.Check("0.0.0.0:8080", tc.loopback)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v loopback=%v: got %v, want %q", tc.p, tc.loopback, err, tc.want)
		}
	}
}
