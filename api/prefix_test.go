package api

import (
	"net/netip"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/flowlog/flowlog"
)

// by=prefix groups external endpoints by prefix (the lengths asked for, or
// /24 and /48); each prefix answered is a value src_ip, dst_ip and ip take.
func TestTopByPrefixAndSidePrefixes(t *testing.T) {
	agg := &fakeAgg{talkers: []flowlog.Talker{
		{Prefix: netip.MustParsePrefix("203.0.113.0/24"), Totals: flowlog.Totals{Bytes: 10, Packets: 2, Flows: 1}},
	}}
	rec := serve(t, aggServer(agg, now0), "/api/v1/aggregates/top?by=prefix")
	wantBody(t, rec, 200, `{"Code":200,"Message":"top talkers retrieved successfully","Response":[`+
		`{"type":"","id":"","name":"","ip":"","prefix":"203.0.113.0/24","bytes":10,"packets":2,"flows":1}]}`)
	if want := (flowlog.TopQuery{ByPrefix: true, PrefixLens: flowlog.PrefixLens{V4: 24, V6: 48}, Limit: 10}); !reflect.DeepEqual(agg.top, want) {
		t.Errorf("query\n got %+v\nwant %+v", agg.top, want)
	}
	serve(t, aggServer(agg, now0), "/api/v1/aggregates/top?by=prefix&prefix4=16&prefix6=64&side=src")
	if want := (flowlog.TopQuery{ByPrefix: true, PrefixLens: flowlog.PrefixLens{V4: 16, V6: 64}, Side: flowlog.SideSrc, Limit: 10}); !reflect.DeepEqual(agg.top, want) {
		t.Errorf("query\n got %+v\nwant %+v", agg.top, want)
	}
	for q, msg := range map[string]string{
		"by=prefix&prefix4=33":  `invalid prefix4 \"33\"`,
		"by=prefix&prefix6=0":   `invalid prefix6 \"0\"`,
		"by=subnet":             `invalid by \"subnet\": must be one of participant, ip, asn, country, prefix`,
		"src_ip=203.0.113.0/33": `invalid src_ip \"203.0.113.0/33\": must be an IP address or a CIDR prefix`,
	} {
		if rec := serve(t, aggServer(agg, now0), "/api/v1/aggregates/top?"+q); rec.Code != 400 || !strings.Contains(rec.Body.String(), msg) {
			t.Errorf("%s: %d %s, want 400 %s", q, rec.Code, rec.Body, msg)
		}
	}

	pfx := netip.MustParsePrefix
	for q, want := range map[string]flowlog.Filter{
		"src_ip=203.0.113.0/24":                   {SrcIP: pfx("203.0.113.0/24")},
		"dst_ip=2001:db8:1::/48&src_ip=10.0.0.7":  {DstIP: pfx("2001:db8:1::/48"), SrcIP: pfx("10.0.0.7/32")},
		"dst_ip=::ffff:203.0.113.9/120":           {DstIP: pfx("203.0.113.0/24")},
		"ip=203.0.113.0/24&dst_ip=203.0.113.0/24": {IP: pfx("203.0.113.0/24"), DstIP: pfx("203.0.113.0/24")},
	} {
		v, _ := url.ParseQuery(q)
		f, _, err := ParseFlowsQuery(v)
		if err != nil || !reflect.DeepEqual(f, want) {
			t.Errorf("%s: %+v %v, want %+v", q, f, err, want)
		}
		if g, err := parseStreamQuery(v); err != nil || !reflect.DeepEqual(g, want) {
			t.Errorf("stream %s: %+v %v", q, g, err)
		}
	}
}
