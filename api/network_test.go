package api

import (
	"encoding/json"
	"net/netip"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/flowlog/flowlog"
)

// asn and country filter by the network of either endpoint, on every
// endpoint that takes filters.
func TestNetworkFilterParams(t *testing.T) {
	for q, want := range map[string]flowlog.Filter{
		"asn=13335":                     {ASNs: []uint32{13335}},
		"asn=AS13335,as15169&asn=13335": {ASNs: []uint32{13335, 15169}},
		"country=us&country=DE,us":      {Countries: []string{"US", "DE"}},
		"asn=4294967295&country=AU":     {ASNs: []uint32{4294967295}, Countries: []string{"AU"}},
		"asn=&country=":                 {},
	} {
		v, _ := url.ParseQuery(q)
		f, _, err := ParseFlowsQuery(v)
		if err != nil {
			t.Errorf("%s: %v", q, err)
			continue
		}
		if !reflect.DeepEqual(f, want) {
			t.Errorf("%s: got %+v, want %+v", q, f, want)
		}
		if g, err := parseStreamQuery(v); err != nil || !reflect.DeepEqual(g, want) {
			t.Errorf("stream %s: got %+v %v", q, g, err)
		}
	}
	for q, msg := range map[string]string{
		"asn=0":          `invalid asn "0": must be an AS number 1..4294967295, such as 13335 or AS13335`,
		"asn=AS":         `invalid asn "AS": must be an AS number 1..4294967295, such as 13335 or AS13335`,
		"asn=4294967296": `invalid asn "4294967296": must be an AS number 1..4294967295, such as 13335 or AS13335`,
		"asn=%2B5":       `invalid asn "+5": must be an AS number 1..4294967295, such as 13335 or AS13335`,
		"asn=cloudflare": `invalid asn "cloudflare": must be an AS number 1..4294967295, such as 13335 or AS13335`,
		"country=USA":    `invalid country "USA": must be an ISO 3166 two-letter code such as US or DE`,
		"country=1A":     `invalid country "1A": must be an ISO 3166 two-letter code such as US or DE`,
	} {
		v, _ := url.ParseQuery(q)
		if _, _, err := ParseFlowsQuery(v); err == nil || err.Error() != msg {
			t.Errorf("%s: err %v, want %s", q, err, msg)
		}
	}
}

func TestTopByASAndCountry(t *testing.T) {
	agg := &fakeAgg{talkers: []flowlog.Talker{
		{Participant: flowlog.Participant{ASN: 13335, ASName: "Cloudflare, Inc."}, Totals: flowlog.Totals{Bytes: 10, Packets: 2, Flows: 1}},
	}}
	rec := serve(t, aggServer(agg, now0), "/api/v1/aggregates/top?by=asn&country=au")
	wantBody(t, rec, 200, `{"Code":200,"Message":"top talkers retrieved successfully","Response":[`+
		`{"type":"","id":"","name":"","ip":"","asn":13335,"as_name":"Cloudflare, Inc.","bytes":10,"packets":2,"flows":1}]}`)
	want := flowlog.TopQuery{Filter: flowlog.Filter{Countries: []string{"AU"}}, ByASN: true, Limit: 10}
	if !reflect.DeepEqual(agg.top, want) {
		t.Errorf("query\n got %+v\nwant %+v", agg.top, want)
	}
	agg.talkers = []flowlog.Talker{{Participant: flowlog.Participant{Country: "US"}, Totals: flowlog.Totals{Bytes: 3, Packets: 1, Flows: 1}}}
	rec = serve(t, aggServer(agg, now0), "/api/v1/aggregates/top?by=country&side=dst")
	wantBody(t, rec, 200, `{"Code":200,"Message":"top talkers retrieved successfully","Response":[`+
		`{"type":"","id":"","name":"","ip":"","country":"US","bytes":3,"packets":1,"flows":1}]}`)
	if want := (flowlog.TopQuery{ByCountry: true, Side: flowlog.SideDst, Limit: 10}); !reflect.DeepEqual(agg.top, want) {
		t.Errorf("query\n got %+v\nwant %+v", agg.top, want)
	}
}

// A row names the network of its external endpoint, and a mesh-only row
// keeps Netmaker's shape (no extra keys).
func TestFlowRowNetworkFields(t *testing.T) {
	f := flowlog.Flow{Event: flowlog.Event{
		Start: time.Unix(0, 0),
		Src:   flowlog.Participant{IP: netip.MustParseAddr("10.0.0.1"), Type: flowlog.ParticipantNode, ID: "n1"},
		Dst: flowlog.Participant{IP: netip.MustParseAddr("1.0.0.1"), Type: flowlog.ParticipantExternal,
			ASN: 13335, ASName: "Cloudflare, Inc.", Country: "AU"},
	}}
	var got map[string]any
	b, _ := json.Marshal(NewFlowRow(f))
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["dst_asn"] != 13335.0 || got["dst_as_name"] != "Cloudflare, Inc." || got["dst_country"] != "AU" {
		t.Errorf("external destination: %s", b)
	}
	for _, k := range []string{"src_asn", "src_as_name", "src_country"} {
		if _, ok := got[k]; ok {
			t.Errorf("mesh source has %s: %s", k, b)
		}
	}
	if rec := csvRecord(NewFlowRow(f)); len(rec) != len(exportColumns) || rec[len(rec)-3] != "13335" || rec[len(rec)-1] != "AU" {
		t.Errorf("CSV record %q for columns %q", rec, exportColumns)
	}
}
