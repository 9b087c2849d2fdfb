package main

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
)

// readmeFlag is one flag as README's configuration tables document it.
type readmeFlag struct {
	env, def string
	hasDef   bool // the table has a default column
	line     int
}

var backticked = regexp.MustCompile("`([^`]*)`")

// readmeTables reads README's tables whose header names a command
// ("| `flowlog serve` flag | env | default | |"): command -> flag -> row.
// A cell naming several flags ("`--tls-cert`, `--tls-key`") pairs them with
// the env and default cells' backticked values in order.
func readmeTables(t *testing.T) map[string]map[string]readmeFlag {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	header := regexp.MustCompile("^\\| `flowlog (\\w+)` flag \\| env \\|( default \\|)?")
	out := map[string]map[string]readmeFlag{}
	cmd, hasDef := "", false
	for i, line := range strings.Split(string(b), "\n") {
		if m := header.FindStringSubmatch(line); m != nil {
			cmd, hasDef = m[1], m[2] != ""
			if out[cmd] == nil {
				out[cmd] = map[string]readmeFlag{}
			}
			continue
		}
		if !strings.HasPrefix(line, "|") {
			cmd = ""
			continue
		}
		if cmd == "" || strings.HasPrefix(line, "|---") {
			continue
		}
		cells := strings.Split(strings.Trim(strings.ReplaceAll(line, `\|`, "/"), "|"), "|")
		var flags []string
		for _, m := range backticked.FindAllStringSubmatch(cells[0], -1) {
			flags = append(flags, strings.Fields(m[1])[0]) // "--readers FILE" -> --readers
		}
		envs := backticked.FindAllStringSubmatch(cells[1], -1)
		var defs [][]string
		if hasDef {
			defs = backticked.FindAllStringSubmatch(cells[2], -1)
		}
		if len(envs) != len(flags) || (len(defs) != 0 && len(defs) != len(flags)) {
			t.Errorf("README.md:%d: %d flags, %d env names, %d defaults: pair them one to one", i+1, len(flags), len(envs), len(defs))
			continue
		}
		for j, f := range flags {
			r := readmeFlag{env: envs[j][1], hasDef: hasDef, line: i + 1}
			if len(defs) > 0 {
				r.def = defs[j][1]
			}
			out[cmd][f] = r
		}
	}
	return out
}

// README's configuration tables and `--help` cannot drift: every flag of
// serve and agent is in its table with its env twin and default, and every
// flag in a table exists.
func TestREADMEConfigurationTablesMatchTheFlags(t *testing.T) {
	tables := readmeTables(t)
	p, err := kong.New(&flags{}, options()...)
	if err != nil {
		t.Fatal(err)
	}
	global := map[string]bool{}
	for _, f := range p.Model.Flags {
		global[f.Name] = true
	}
	for _, cmd := range []string{"serve", "agent"} {
		doc := tables[cmd]
		if len(doc) == 0 {
			t.Fatalf("README has no `flowlog %s` flag table", cmd)
		}
		var node *kong.Node
		for _, n := range p.Model.Children {
			if n.Name == cmd {
				node = n
			}
		}
		seen := map[string]bool{}
		for _, f := range node.AllFlags(false) {
			for _, flag := range f {
				name := "--" + flag.Name
				if flag.Name == "help" || flag.Name == "version" {
					continue
				}
				seen[name] = true
				r, ok := doc[name]
				if !ok {
					if !global[flag.Name] || cmd == "serve" { // the global flags are documented once, with serve
						t.Errorf("README: `flowlog %s` table lacks %s", cmd, name)
					}
					continue
				}
				if env := strings.Join(flag.Envs, ","); r.env != env {
					t.Errorf("README.md:%d: %s env %q, --help says %q", r.line, name, r.env, env)
				}
				def := flag.Default
				if flag.IsBool() && def == "false" {
					def = ""
				}
				if r.hasDef && r.def != def {
					t.Errorf("README.md:%d: %s default %q, --help says %q", r.line, name, r.def, def)
				}
				if !r.hasDef && def != "" {
					t.Errorf("README.md:%d: %s has default %q but its table has no default column", r.line, name, def)
				}
			}
		}
		for name, r := range doc {
			if !seen[name] {
				t.Errorf("README.md:%d: `flowlog %s` has no flag %s", r.line, cmd, name)
			}
		}
	}
}
