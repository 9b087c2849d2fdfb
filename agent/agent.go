// Package agent is the pipeline of `flowlog agent`: conntrack flows are
// enriched into wire events (agent/enrich, from the hot-reloaded config of
// agent/config), stamped with a strictly increasing version, batched into
// envelopes and written to the spool (agent/export, agent/spool), from which
// the exporter streams them to the collector.
package agent

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/flowlog/flowlog/agent/config"
	"github.com/flowlog/flowlog/agent/conntrack"
	"github.com/flowlog/flowlog/agent/enrich"
	"github.com/flowlog/flowlog/agent/export"
	pb "github.com/flowlog/flowlog/proto/flow"
)

// Pipeline turns conntrack flows into events. Run it from one goroutine;
// SetConfig may be called from any (config reloads).
type Pipeline struct {
	table atomic.Pointer[enrich.Table]
	Clock enrich.Clock
	Stats enrich.Stats

	// Undelivered, if set, gets back the Destroys of every envelope the
	// batcher dropped (full spool), so that the source closes those flows
	// again later (conntrack.Source.Undelivered): a dropped DESTROY must
	// not leave its flow open at the collector forever.
	Undelivered func([]conntrack.Flow)

	batch     *export.Batcher  // nil with Stdout
	stdout    io.Writer        // JSON lines instead of batches
	one       pb.FlowEvent     // the stdout mode's reusable event
	destroys  []conntrack.Flow // the Destroys in the open envelope (with Undelivered)
	dropsSeen uint64           // batch.Dropped when the open envelope began
}

// NewPipeline batches into b, or prints JSON lines to w when b is nil.
func NewPipeline(c *config.Config, b *export.Batcher, w io.Writer) *Pipeline {
	p := &Pipeline{batch: b, stdout: w}
	p.one.Src, p.one.Dst = &pb.FlowParticipant{}, &pb.FlowParticipant{}
	p.SetConfig(c)
	return p
}

// SetConfig swaps in a new enrichment table; flows after it use it.
func (p *Pipeline) SetConfig(c *config.Config) { p.table.Store(enrich.New(c)) }

// Run consumes flows until the channel closes or ctx ends, sealing an
// envelope at least every interval so that quiet hosts still report
// promptly. The open envelope is flushed on return.
func (p *Pipeline) Run(ctx context.Context, flows <-chan conntrack.Flow, interval time.Duration) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	defer p.flush()
	for {
		select {
		case f, ok := <-flows:
			if !ok {
				return nil
			}
			if err := p.Handle(&f); err != nil {
				return err
			}
		case <-tick.C:
			p.flush()
		case <-ctx.Done():
			return nil
		}
	}
}

// Handle enriches one flow and queues (or prints) its event: a New or an
// Update (counters so far) as a START, a Destroy as a DESTROY.
func (p *Pipeline) Handle(f *conntrack.Flow) error {
	ef := enrich.Flow{
		Destroy: f.Kind == conntrack.Destroy, ID: f.ID, Proto: f.Proto,
		Src: f.Src, Dst: f.Dst, SrcPort: f.SrcPort, DstPort: f.DstPort,
		ICMPType: f.ICMPType, ICMPCode: f.ICMPCode, Start: f.Start, End: f.End,
		OrigBytes: f.OrigBytes, OrigPackets: f.OrigPackets, ReplyBytes: f.ReplyBytes, ReplyPackets: f.ReplyPackets,
		Status: f.Status,
	}
	dst := &p.one
	if p.batch != nil {
		dst = p.batch.Slot()
	}
	v := p.table.Load().Enrich(&ef, p.Clock.Next(), dst)
	p.Stats.Add(v)
	if v != enrich.Keep {
		return nil
	}
	if p.batch != nil {
		if p.Undelivered != nil && f.Kind == conntrack.Destroy {
			p.destroys = append(p.destroys, *f)
		}
		p.batch.Commit()
		p.sealed()
		return nil
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(dst)
	if err != nil {
		return err
	}
	_, err = p.stdout.Write(append(b, '\n'))
	return err
}

func (p *Pipeline) flush() {
	if p.batch != nil {
		p.batch.Flush()
		p.sealed()
	}
}

// sealed hands the open envelope's Destroys to Undelivered if the batcher
// has just sealed it and dropped it.
func (p *Pipeline) sealed() {
	if p.batch.Len() != 0 {
		return // still open
	}
	if d := p.batch.Dropped.Load(); d != p.dropsSeen {
		p.dropsSeen = d
		if p.Undelivered != nil && len(p.destroys) > 0 {
			p.Undelivered(p.destroys)
		}
	}
	p.destroys = p.destroys[:0]
}

// versionFile keeps the clock's high-water mark across restarts, so that a
// DESTROY read after a restart (possibly after the wall clock stepped back)
// still gets a version above its START's.
const versionFile = "version"

// versionMargin is added to what is persisted: versions handed out after
// the last save are at most this far ahead of it.
const versionMargin = 2_000 // ms; saved every 500ms

// LoadVersion seeds the clock from the state directory.
func (p *Pipeline) LoadVersion(stateDir string) error {
	b, err := os.ReadFile(filepath.Join(stateDir, versionFile))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return fmt.Errorf("%s: not a version: %w", filepath.Join(stateDir, versionFile), err)
	}
	p.Clock.Observe(v)
	return nil
}

// SaveVersion persists the clock's high-water mark plus a margin, atomically.
func (p *Pipeline) SaveVersion(stateDir string) error {
	v := p.Clock.Last() + versionMargin
	tmp := filepath.Join(stateDir, versionFile+".tmp")
	if err := os.WriteFile(tmp, strconv.AppendInt(nil, v, 10), 0o640); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(stateDir, versionFile))
}
