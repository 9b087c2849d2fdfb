package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ClickHouse/ch-go/proto"
)

// lcStr writes the bytes ch-go's own LowCardinality(String) column writes,
// for runs of equal values, few and many distinct ones (8- and 16-bit
// keys), the empty string, and after a Reset (columns are reused).
func TestLowCardEncodesAsChGo(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	ours := newLCStr()
	for _, distinct := range []int{1, 3, 256, 257, 70000} {
		theirs := new(proto.ColStr).LowCardinality()
		ours.Reset()
		for i := range 100000 {
			v := fmt.Sprint("v", r.IntN(distinct))
			if n := len(theirs.Values); n > 0 && i%7 < 3 { // runs: the same as the row before
				v = theirs.Values[n-1]
			}
			if distinct == 3 && i%11 == 0 {
				v = ""
			}
			theirs.Append(v)
			ours.Append(v)
		}
		encode := func(c proto.ColInput) []byte {
			var b proto.Buffer
			blk := proto.Block{Columns: 1, Rows: c.Rows()}
			if err := blk.EncodeRawBlock(&b, 0, []proto.InputColumn{{Name: "c", Data: c}}); err != nil {
				t.Fatal(err)
			}
			return b.Buf
		}
		if a, b := encode(ours), encode(theirs); !bytes.Equal(a, b) {
			t.Fatalf("%d distinct values: %d bytes, ch-go's column %d bytes; they differ", distinct, len(a), len(b))
		}
	}
}
