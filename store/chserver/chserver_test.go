package chserver

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// The URL becomes the driver's options: every address for failover, TLS
// from https, credentials, extra parameters as settings; mistakes are
// reported before any connection, naming what is wrong.
func TestOptionsFromURL(t *testing.T) {
	o, err := options(Config{URL: "https://flowlog:s3cret@ch1:8443,ch2:8443?insert_quorum=2&dial_timeout=5s", Cluster: "c"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.Addr, " ") != "ch1:8443 ch2:8443" || o.Protocol != clickhouse.HTTP || o.TLS == nil ||
		o.Auth.Username != "flowlog" || o.Auth.Password != "s3cret" || o.DialTimeout.String() != "5s" {
		t.Errorf("options: addr %v protocol %v tls %v user %q", o.Addr, o.Protocol, o.TLS != nil, o.Auth.Username)
	}
	if o.Settings["insert_quorum"] != 2 || o.Settings["distributed_foreground_insert"] != 1 {
		t.Errorf("settings sent with every statement: %v", o.Settings)
	}
	if o.ReadTimeout != DefaultReadTimeout {
		t.Errorf("read timeout %s, want %s", o.ReadTimeout, DefaultReadTimeout)
	}
	if o, _ := options(Config{URL: "http://ch1:8123?read_timeout=30m"}); o.ReadTimeout.String() != "30m0s" {
		t.Errorf("read_timeout in the URL: %s, want 30m", o.ReadTimeout)
	}
	if o.MaxOpenConns != DefaultConns {
		t.Errorf("pool: %d connections, want %d", o.MaxOpenConns, DefaultConns)
	}
	if o, err := options(Config{URL: "http://ch1:8123"}); err != nil || o.TLS != nil || len(o.Settings) != 0 {
		t.Errorf("single server over http: %v %v, want no TLS and no cluster settings", o, err)
	}

	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, []byte("not a certificate"), 0o600)
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "URL is empty"},
		{Config{URL: "clickhouse://ch1:9000"}, `scheme "clickhouse": flowlog speaks to ClickHouse's HTTP interface`},
		{Config{URL: "ch1:8123"}, `scheme "ch1:8123"`},
		{Config{URL: "http://ch1:8123/flowlog"}, `database "flowlog": the database is the store's setting (--database)`},
		{Config{URL: "http://ch1"}, `address "ch1" has no port`},
		{Config{URL: "http://ch1:8123", CAFile: ca}, "use https://"},
		{Config{URL: "https://ch1:8443", CAFile: ca}, "no PEM certificate"},
		{Config{URL: "https://u:hunter2@ch1:8443", CAFile: "/nonexistent/ca.pem"}, "no such file"},
	} {
		_, err := options(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one saying %q", c.cfg, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the password leaks into %q", err)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"https://u:pw@h1:8443,h2:8443?x=1": "https://u:xxxxx@h1:8443,h2:8443?x=1",
		"http://u@h1:8123":                 "http://u@h1:8123",
		"http://h1:8123/?a=b@c":            "http://h1:8123/?a=b@c",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// Each insert carries a deduplication token derived from what it inserts:
// the same rows into the same table (a retry) share it, anything else not.
func TestInsertSettingsDeduplicationToken(t *testing.T) {
	a := insertSettings("db.flows", "a, b", []byte{1, 2, 3})
	if a["optimize_on_insert"] != 0 || a["insert_deduplicate"] != 1 || !strings.HasPrefix(fmt.Sprint(a["insert_deduplication_token"]), "flowlog-") {
		t.Fatalf("settings %v", a)
	}
	if b := insertSettings("db.flows", "a, b", []byte{1, 2, 3}); b["insert_deduplication_token"] != a["insert_deduplication_token"] {
		t.Error("a retried insert must carry the same token")
	}
	for _, other := range []map[string]any{
		insertSettings("db.flows", "a, b", []byte{1, 2, 4}),
		insertSettings("db.rejected_events", "a, b", []byte{1, 2, 3}),
		insertSettings("db.flows", "a, c", []byte{1, 2, 3}),
	} {
		if other["insert_deduplication_token"] == a["insert_deduplication_token"] {
			t.Errorf("different inserts share a token: %v", other)
		}
	}
}

// Server exceptions that need an operator are permanent; the server or the
// network being away, overload and unknown codes are transient.
func TestErrorClasses(t *testing.T) {
	for _, c := range []struct {
		err       error
		permanent bool
	}{
		{&clickhouse.Exception{Code: 516, Message: "Authentication failed"}, true},
		{&clickhouse.HTTPError{StatusCode: 403, Err: &clickhouse.Exception{Code: 497, Message: "ACCESS_DENIED"}}, true},
		{&clickhouse.Exception{Code: 60, Message: "Unknown table"}, true},
		{&clickhouse.Exception{Code: 62, Message: "Syntax error"}, true},
		{&clickhouse.Exception{Code: 252, Message: "Too many parts"}, false},
		{&clickhouse.Exception{Code: 242, Message: "Table is in readonly mode (Keeper away)"}, false},
		{&clickhouse.Exception{Code: 999, Message: "Keeper exception"}, false},
		{&clickhouse.Exception{Code: 241, Message: "Memory limit exceeded"}, false},
		{&clickhouse.Exception{Code: 12345, Message: "a code of a future release"}, false},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, false},
		{io.ErrUnexpectedEOF, false},
	} {
		err := classify("insert into db.flows", c.err)
		if IsPermanent(err) != c.permanent {
			t.Errorf("%v: permanent %v, want %v", c.err, IsPermanent(err), c.permanent)
		}
		if !errors.Is(err, c.err) || !strings.Contains(err.Error(), "insert into db.flows") {
			t.Errorf("%v: wrapped as %v, want the cause kept and the operation named", c.err, err)
		}
	}
	if classify("x", nil) != nil {
		t.Error("no error must stay no error")
	}
}

// No server answering at any address: Open fails at once with a transient
// error naming the URL, without the password.
func TestOpenWithNoServerIsTransient(t *testing.T) {
	var addrs []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, ln.Addr().String())
		ln.Close() // nothing listens there now
	}
	url := "http://flowlog:hunter2@" + strings.Join(addrs, ",")
	_, err := Open(t.Context(), Config{URL: url})
	if err == nil || IsPermanent(err) {
		t.Fatalf("Open with no server: %v, want a transient error", err)
	}
	if !strings.Contains(err.Error(), addrs[0]) || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %q should name the URL without its password", err)
	}
}

// The store's statements pass the driver's own checks (an INSERT it can
// split into statement and columns, a SELECT without a FORMAT clause) and
// reach the network: here nothing listens, so each ends in a refused
// connection, a transient error, and not in the driver's refusal.
func TestStatementsReachTheServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	opt, err := options(Config{URL: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := clickhouse.Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{conn: conn}
	defer e.Close()
	errs := map[string]error{
		"insert": e.Insert(t.Context(), "`flowlog`.flows", "event_type, flow_id, host_id, src_ip, start_ts, version", "RowBinary", []byte{1, 0}),
		"exec":   e.Exec(t.Context(), "INSERT INTO `flowlog`.rollup_claims (day, marked, owner, claimed) SETTINGS insert_deduplicate = 1 VALUES ('2026-01-01', 1, 'a', 2)"),
	}
	_, errs["query"] = e.QueryJSON(t.Context(), "SELECT count() AS n FROM `flowlog`.flows FINAL WHERE network_id = 'x' "+
		"SETTINGS output_format_json_quote_64bit_integers = 0, do_not_merge_across_partitions_select_final = 1")
	for op, err := range errs {
		if !errors.Is(err, syscall.ECONNREFUSED) || IsPermanent(err) {
			t.Errorf("%s: %v, want a transient refused connection", op, err)
		}
	}
}
