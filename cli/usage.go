package cli

import (
	"errors"
	"fmt"
	"io"
	"regexp"

	"github.com/alecthomas/kong"
)

// ParseFailed prints an error of the command line that kong found before a
// command ran (an unknown flag, a missing value, an unknown command) the
// way the commands print theirs: one line naming the command, kong's "did
// you mean" when it has one, and where the help is, not the whole help.
// It returns the status to exit with: 1, as for any bad flag.
func ParseFailed(w io.Writer, err error) int {
	cmd := "flowlog"
	var pe *kong.ParseError
	if errors.As(err, &pe) && pe.Context != nil {
		if n := pe.Context.Selected(); n != nil {
			cmd = n.FullPath()
		} else if pe.Context.Model != nil {
			cmd = pe.Context.Model.Name
		}
	}
	msg := missingValue.ReplaceAllString(err.Error(), "$1: needs a value")
	fmt.Fprintf(w, "%s: %s\nsee '%s --help'\n", cmd, sanitize(msg), cmd)
	return exitUsage
}

// missingValue is kong's message for a flag given last without its value.
var missingValue = regexp.MustCompile(`^(--[\w-]+): expected \w+ value but got "EOL" \(<EOL>\)$`)
