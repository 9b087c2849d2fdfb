package chserver_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/flowlog/flowlog/internal/testutil"
	"github.com/flowlog/flowlog/store/chdb"
	"github.com/flowlog/flowlog/store/chserver"
)

// Every setting the engine sends is one the server knows (an unknown one
// fails every statement), checked against the embedded engine's list (the
// same code as the server's; releases before 24.8 lack some, hence
// chserver.MinServer).
func TestSettingsSentExist(t *testing.T) {
	db, err := chdb.Open(testutil.EngineLib(t), t.TempDir(), 1, chdb.Settings{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	names := chserver.SettingsSent()
	out, err := db.QueryJSON(context.Background(), "SELECT name FROM system.settings WHERE name IN ('"+strings.Join(names, "', '")+"')")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r struct{ Name string }
		if json.Unmarshal([]byte(line), &r) == nil {
			known[r.Name] = true
		}
	}
	// Parameters of the server's HTTP handler itself, not settings.
	known["wait_end_of_query"] = true
	for _, n := range names {
		if !known[n] {
			t.Errorf("setting %s is not in system.settings", n)
		}
	}
}

// A query longer than the server's default max_query_size (the identity
// lookup's keys) is sent with a max_query_size it fits in, as a parameter
// the server applies before parsing; others are sent as they were.
func TestLongQueriesCarryTheirSize(t *testing.T) {
	if _, ok := chserver.SettingsFor("SELECT 1")["max_query_size"]; ok {
		t.Error("a short query is sent with max_query_size")
	}
	long := "SELECT '" + strings.Repeat("k", 300<<10) + "'"
	got, ok := chserver.SettingsFor(long)["max_query_size"].(int)
	if !ok || got <= len(long) {
		t.Errorf("a query of %d bytes is sent with max_query_size %v", len(long), chserver.SettingsFor(long)["max_query_size"])
	}
	if chserver.SettingsFor(long)["wait_end_of_query"] != 1 {
		t.Error("a long query lost the other query settings")
	}
}
