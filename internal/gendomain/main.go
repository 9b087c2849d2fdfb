// Command gendomain writes web/src/domain.gen.ts, the page's copy of the
// domain's names (protocols, participant types, directions), so that the
// page prints what the API and the CLI print. Run by `go generate .` at the
// repository's root; TestGeneratedDomainIsCurrent fails when it is stale.
package main

import (
	"fmt"
	"os"

	"github.com/flowlog/flowlog"
)

func main() {
	out := "web/src/domain.gen.ts"
	if len(os.Args) > 1 {
		out = os.Args[1]
	}
	if err := os.WriteFile(out, []byte(flowlog.DomainTS()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
