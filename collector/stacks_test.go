package collector

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// GODEBUG gains adaptivestackstart=0 beside what it sets; an operator's own
// adaptivestackstart, either value, is kept.
func TestSmallStacksEnv(t *testing.T) {
	for _, c := range []struct {
		env     []string
		want    []string
		changed bool
	}{
		{[]string{"PATH=/bin"}, []string{"PATH=/bin", "GODEBUG=adaptivestackstart=0"}, true},
		{[]string{"GODEBUG=", "A=1"}, []string{"A=1", "GODEBUG=adaptivestackstart=0"}, true},
		{[]string{"GODEBUG=gctrace=1", "A=1"}, []string{"A=1", "GODEBUG=gctrace=1,adaptivestackstart=0"}, true},
		{[]string{"GODEBUG=adaptivestackstart=1"}, []string{"GODEBUG=adaptivestackstart=1"}, false},
		{[]string{"GODEBUG=gctrace=1,adaptivestackstart=0"}, []string{"GODEBUG=gctrace=1,adaptivestackstart=0"}, false},
		{[]string{"GODEBUG=gctrace=1", "GODEBUG=adaptivestackstart=1"}, []string{"GODEBUG=gctrace=1,adaptivestackstart=0"}, true}, // the first counts
	} {
		got, changed := SmallStacksEnv(c.env)
		if !slices.Equal(got, c.want) || changed != c.changed {
			t.Errorf("SmallStacksEnv(%q) = %q, %v; want %q, %v", c.env, got, changed, c.want, c.changed)
		}
	}
}

// The collector re-executes itself once, same pid and arguments, and then
// runs with adaptivestackstart=0; it does not loop.
func TestReexecWithSmallStacks(t *testing.T) {
	if os.Getenv("FLOWLOG_TEST_REEXEC") == "1" {
		n, _ := strconv.Atoi(os.Getenv("FLOWLOG_TEST_REEXEC_RUNS"))
		os.Setenv("FLOWLOG_TEST_REEXEC_RUNS", strconv.Itoa(n+1)) // inherited by the exec
		if err := ReexecWithSmallStacks(); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("pid=%d runs=%d GODEBUG=%s\n", os.Getpid(), n+1, os.Getenv("GODEBUG"))
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestReexecWithSmallStacks$", "-test.v")
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GODEBUG=") })
	cmd.Env = append(env, "FLOWLOG_TEST_REEXEC=1", "GODEBUG=gctrace=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	want := fmt.Sprintf("pid=%d runs=2 GODEBUG=gctrace=0,adaptivestackstart=0\n", cmd.Process.Pid)
	if !strings.Contains(string(out), want) {
		t.Fatalf("the child printed:\n%s\nwant a line %q", out, want)
	}
}
