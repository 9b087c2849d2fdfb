package conntrack

import (
	"sync"
	"testing"

	"github.com/vishvananda/netns"

	"github.com/flowlog/flowlog/internal/netnstest"
)

type pair = netnstest.Pair

func needRoot(t *testing.T) { netnstest.NeedRoot(t) }

// newPair: see netnstest.New.
func newPair(t *testing.T) *pair { return netnstest.New(t) }

// in runs fn on a thread in ns; sockets made there stay there.
func in(t *testing.T, ns netns.NsHandle, fn func() error) {
	t.Helper()
	if err := inNetNS(ns, fn); err != nil {
		t.Fatal(err)
	}
}

// collector gathers what a Source emits.
type collector struct {
	mu    sync.Mutex
	flows []Flow
}

func (c *collector) consume(ch <-chan Flow) {
	for f := range ch {
		c.mu.Lock()
		c.flows = append(c.flows, f)
		c.mu.Unlock()
	}
}

func (c *collector) find(k Kind, match func(Flow) bool) (Flow, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, f := range c.flows {
		if f.Kind == k && match(f) {
			return f, true
		}
	}
	return Flow{}, false
}

func (c *collector) all() []Flow {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Flow(nil), c.flows...)
}
