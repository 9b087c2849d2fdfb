package config

import (
	"strings"
	"testing"
)

// FuzzParse: any input either parses into a config that passes its own
// validation again after a round trip, or fails with an error naming the
// file. It never panics.
func FuzzParse(f *testing.F) {
	f.Add([]byte("host: {id: h, name: n}\nnetworks:\n  - id: m\n    addresses: [10.0.0.1]\n    cidrs: [10.0.0.0/24]\n"))
	f.Add([]byte("host: {id: h}\nnetworks: []\n"))
	f.Add([]byte("participants:\n  - match: 10.0.0.0/33\n    type: robot\n"))
	f.Add([]byte("drop: {presets: [dns, icmp], ports: [53], protocols: [gre, 300]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("valid config does not marshal: %v", err)
		}
		if _, err := Parse("fuzz.yaml", out); err != nil {
			t.Fatalf("round trip of a valid config fails: %v\n%s", err, out)
		}
	})
}
