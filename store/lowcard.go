package store

import "github.com/ClickHouse/ch-go/proto"

// lcStr is a LowCardinality(String) column whose dictionary is built as rows
// are appended. proto.ColLowCardinality keeps every value and builds the
// dictionary when the block is encoded, one map lookup a row: with eleven
// such columns that was a tenth of the insert path's Go CPU under the
// bench. Here a row equal to the previous one (an envelope's host and
// network, the empty AS fields of mesh peers, a participant talking to
// many) costs a comparison, and the values are not kept twice. The bytes
// written are those of proto.ColLowCardinalityRaw (TestLowCardEncodesAsChGo
// compares them with proto.ColLowCardinality's).
type lcStr struct {
	raw   proto.ColLowCardinalityRaw // Index is dict; the keys are filled by Prepare
	dict  proto.ColStr
	keys  []uint32
	index map[string]uint32

	last    string
	lastKey uint32
}

func newLCStr() *lcStr {
	c := &lcStr{index: map[string]uint32{}}
	c.raw.Index = &c.dict
	return c
}

func (c *lcStr) Append(s string) {
	if len(c.keys) > 0 && s == c.last {
		c.keys = append(c.keys, c.lastKey)
		return
	}
	k, ok := c.index[s]
	if !ok {
		k = uint32(c.dict.Rows())
		c.dict.Append(s)
		c.index[s] = k
	}
	c.keys = append(c.keys, k)
	c.last, c.lastKey = s, k
}

func (c *lcStr) Type() proto.ColumnType { return c.raw.Type() }
func (c *lcStr) Rows() int              { return len(c.keys) }

// Prepare writes the keys at the narrowest width the dictionary allows, as
// proto.ColLowCardinality does (a block's dictionary holds at most one
// entry a row, so 32 bits always suffice).
func (c *lcStr) Prepare() error {
	c.raw.Keys8, c.raw.Keys16, c.raw.Keys32 = c.raw.Keys8[:0], c.raw.Keys16[:0], c.raw.Keys32[:0]
	switch n := c.dict.Rows(); {
	case n <= 1<<8:
		c.raw.Key = proto.KeyUInt8
		for _, k := range c.keys {
			c.raw.Keys8 = append(c.raw.Keys8, uint8(k))
		}
	case n <= 1<<16:
		c.raw.Key = proto.KeyUInt16
		for _, k := range c.keys {
			c.raw.Keys16 = append(c.raw.Keys16, uint16(k))
		}
	default:
		c.raw.Key = proto.KeyUInt32
		c.raw.Keys32 = append(c.raw.Keys32, c.keys...)
	}
	return nil
}

func (c *lcStr) EncodeState(b *proto.Buffer)  { c.raw.EncodeState(b) }
func (c *lcStr) EncodeColumn(b *proto.Buffer) { c.raw.EncodeColumn(b) }
func (c *lcStr) WriteColumn(w *proto.Writer)  { c.raw.WriteColumn(w) }

func (c *lcStr) Reset() {
	c.raw.Reset() // the dictionary and the key columns
	c.keys = c.keys[:0]
	clear(c.index)
	c.last, c.lastKey = "", 0
}
