package loadgen

import (
	"errors"
	"math/bits"
	"sync"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// sendCodec is grpc's proto codec with one change: outgoing messages are
// marshalled into buffers of a pool that does not zero them. grpc's default
// pool hands a 100 KiB envelope a 1 MiB buffer and clears all of it on every
// Send, which cost loadgen as much CPU as generating the events. Marshal
// overwrites every byte it returns, so zeroing buys nothing here. On the wire
// it is plain "proto": the collector sees no difference.
type sendCodec struct{ pool *dirtyPool }

var _ encoding.CodecV2 = sendCodec{}

func (sendCodec) Name() string { return "proto" }

func (c sendCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, errors.New("loadgen: not a proto message")
	}
	// Size first, then marshal with the cached sizes, as grpc's codec does.
	// Participants shared between streams get their size cache written
	// concurrently, always with the same value: they are never mutated.
	size := proto.Size(m)
	buf := c.pool.Get(size)
	out, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend((*buf)[:0], m)
	if err != nil {
		c.pool.Put(buf)
		return nil, err
	}
	*buf = out
	return mem.BufferSlice{mem.NewBuffer(buf, c.pool)}, nil
}

func (sendCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return errors.New("loadgen: not a proto message")
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}

// dirtyPool keeps byte buffers by power-of-two capacity and hands them out
// without clearing them.
type dirtyPool struct{ classes [40]sync.Pool }

var _ mem.BufferPool = (*dirtyPool)(nil)

func (p *dirtyPool) Get(n int) *[]byte {
	c := bits.Len(uint(max(n, 1) - 1))
	if c < len(p.classes) {
		if b, ok := p.classes[c].Get().(*[]byte); ok {
			*b = (*b)[:n]
			return b
		}
	}
	b := make([]byte, n, 1<<c)
	return &b
}

func (p *dirtyPool) Put(b *[]byte) {
	c := bits.Len(uint(max(cap(*b), 1) - 1))
	if cap(*b) == 1<<c && c < len(p.classes) { // only buffers Get made (MarshalAppend never grows them)
		p.classes[c].Put(b)
	}
}
