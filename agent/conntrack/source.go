// Package conntrack is the agent's kernel source of flows: it listens to
// conntrack NEW and DESTROY events in one network namespace and turns them
// into Flows, keeping a Destroy's Start equal to its New's.
//
// Events come from a plain netlink socket decoded with ti-mo/conntrack,
// not from ti-mo's Conn.Listen: Listen cannot force a receive buffer past
// net.core.rmem_max, its workers die on the first ENOBUFS (and a Conn can
// only Listen once), and Close blocks while a worker waits on an unread
// channel. On our own socket an overrun is just an error to count; the
// socket stays subscribed and we resynchronise from a table dump.
//
// What Linux 6.18 does (checked by the tests): NEW events carry no
// CTA_TIMESTAMP, dumps and DESTROY events carry start (and DESTROY stop,
// the expiry time, not the removal time); accounting and timestamps exist
// only on entries created after the sysctls were on. An expired entry is
// removed, and its DESTROY sent, by the kernel's garbage collector, which
// on a quiet table took about 26 s after a 1 s UDP timeout, or at once by
// any lookup that meets it, a table dump included.
package conntrack

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Options configure a Source.
type Options struct {
	// NetNS is the network namespace to watch: a name under /var/run/netns,
	// a path such as /proc/PID/ns/net, or "" for the agent's own.
	NetNS string
	// ReadBuffer is the event socket's receive buffer in bytes (default
	// 8 MiB, about 30k events of backlog). Forced past net.core.rmem_max
	// when the process has CAP_NET_ADMIN.
	ReadBuffer int
	// InitialSync dumps the table when Run starts and emits New for every
	// entry already there. Entries created before anyone listened have no
	// event cache in the kernel (nf_conntrack_events=2): they never send a
	// DESTROY, and are only found gone by a later resync.
	InitialSync bool
	// LookupStart asks the kernel for the start timestamp of every NEW
	// that lacks one (one netlink round trip each), so that Start is the
	// kernel's and survives an agent restart: a Destroy read by the next
	// agent carries the same Start as the New read by this one. Without it
	// Start is the time the NEW was read, and flows open across a restart
	// get a Destroy whose Start differs from their New's.
	LookupStart bool
	// ResyncInterval, if set, also resynchronises on this period. It is
	// how flows whose DESTROY the kernel never sends (see InitialSync) or
	// lost in any other way are eventually closed. A dump of 100k entries
	// costs on the order of 100 ms of CPU.
	ResyncInterval time.Duration
	// ActiveTimeout, if set, reports every flow open longer than this since
	// its last report with an Update carrying its counters so far (read
	// from a table dump), like NetFlow's active timeout: a resync then runs
	// at least every ActiveTimeout/2, and each flow gets an update about
	// every ActiveTimeout.
	ActiveTimeout time.Duration
	// StateFile, if set, persists the open set (the flows announced and not
	// yet ended: identity, start, last counters) there, so that the next
	// Source on the same file keeps their Start (hence their flow_id, also
	// for entries without a kernel timestamp) instead of announcing them
	// again, and its first resync closes those that ended meanwhile. A
	// damaged file is ignored with a WARN (see Stats.StateCorrupt).
	StateFile string
	// MaxStateFlows bounds the flows StateFile holds (default
	// DefaultMaxStateFlows, about 100 bytes each).
	MaxStateFlows int
	// Now replaces time.Now for the flows' clock (starts without a kernel
	// timestamp, ends, due updates); tests inject it.
	Now func() time.Time
	Log *slog.Logger
}

// Stats are counters since Open.
type Stats struct {
	Events         uint64 // NEW and DESTROY events read from the kernel
	News, Destroys uint64 // Events by kind
	Overruns       uint64 // ENOBUFS: the kernel dropped events for us
	Resyncs        uint64 // table dumps compared with the open set
	ResyncStarts   uint64 // New emitted for entries found only in a dump
	ResyncDestroys uint64 // Destroy made up for flows gone without one (ended unobserved: last known counters)
	StartFallbacks uint64 // New whose Start is our clock, not the kernel's
	Undecodable    uint64 // messages skipped because they did not decode
	Open           uint64 // flows currently believed open
	Updates        uint64 // active-timeout Updates emitted
	StateRestored  uint64 // open flows read back from StateFile at Open
	StateCorrupt   uint64 // damaged records, torn tails, foreign files ignored in StateFile
	Redelivered    uint64 // Destroys handed back by Undelivered, to close again
}

// Source reads one namespace's conntrack events. Run it from one goroutine
// at a time; Stats may be called from any.
type Source struct {
	o      Options
	log    *slog.Logger
	ns     netns.NsHandle
	saved  []saved
	events *netlink.Conn // NEW and DESTROY groups
	query  *ct.Conn      // dumps and lookups; a multicast socket cannot query

	mu       sync.Mutex // deadline changes vs. the ctx watcher
	stopped  bool
	deadline time.Time // the events socket's read deadline, while not stopped

	tr    *tracker
	stats struct {
		events, news, destroys, overruns, resyncs, resyncStarts, resyncDestroys,
		fallbacks, undecodable, open, updates, stateRestored, stateCorrupt, redelivered atomic.Uint64
	}

	undeliveredMu sync.Mutex
	undelivered   []Flow // Destroys to put back in the open set (Undelivered)
}

const defaultReadBuffer = 8 << 20

// Defaults of the agent's flags for ResyncInterval and ActiveTimeout (the
// Options themselves take zero as off).
const (
	// DefaultResyncInterval bounds how long a flow whose DESTROY was lost
	// stays open; a dump costs about 1 ms of CPU per 1,000 entries.
	DefaultResyncInterval = 5 * time.Minute
	// DefaultActiveTimeout is the active timeout NetFlow/IPFIX exporters
	// are commonly set to: bytes land in the right minute.
	DefaultActiveTimeout = 60 * time.Second
)

// Open dials conntrack netlink in the namespace, subscribes to NEW and
// DESTROY events and switches accounting and timestamps on there (undone
// by Close). Events queue in the socket from now on, so open before the
// traffic of interest and Run soon.
func Open(o Options) (*Source, error) {
	if err := o.check(); err != nil {
		return nil, err
	}
	if o.ReadBuffer <= 0 {
		o.ReadBuffer = defaultReadBuffer
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	label := o.NetNS
	if label == "" {
		label = "(own)"
	}
	s := &Source{o: o, log: o.Log.With("netns", label), tr: newTracker()}
	s.tr.lost = s.lost
	if o.Now != nil {
		s.tr.now = o.Now
	}
	s.tr.activeTimeout, s.tr.dueSlack = o.ActiveTimeout, s.resyncPeriod()/2

	var err error
	if err = s.openState(); err != nil {
		return nil, err
	}
	if s.ns, err = openNetNS(o.NetNS); err != nil {
		s.closeState()
		return nil, err
	}
	if err = inNetNS(s.ns, func() (err error) { s.saved, err = enableSysctls(label); return err }); err != nil {
		s.ns.Close()
		s.closeState()
		return nil, err
	}
	if err = s.dial(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Source) dial() error {
	cfg := &netlink.Config{NetNS: int(s.ns)}
	if !s.ns.IsOpen() {
		cfg.NetNS = 0
	}
	var err error
	if s.events, err = netlink.Dial(unix.NETLINK_NETFILTER, cfg); err != nil {
		return fmt.Errorf("conntrack: dial netlink: %w", err)
	}
	if err = s.setReadBuffer(s.o.ReadBuffer); err != nil {
		return err
	}
	for _, g := range []netfilter.NetlinkGroup{netfilter.GroupCTNew, netfilter.GroupCTDestroy} {
		if err = s.events.JoinGroup(uint32(g)); err != nil {
			return fmt.Errorf("conntrack: join group %d: %w", g, err)
		}
	}
	if s.query, err = ct.Dial(cfg); err != nil {
		return fmt.Errorf("conntrack: dial netlink: %w", err)
	}
	return nil
}

// setReadBuffer tries SO_RCVBUFFORCE, which ignores net.core.rmem_max, then
// falls back to SO_RCVBUF (capped by it).
func (s *Source) setReadBuffer(n int) error {
	rc, err := s.events.SyscallConn()
	if err != nil {
		return fmt.Errorf("conntrack: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n)
	}); err != nil {
		return fmt.Errorf("conntrack: %w", err)
	}
	if serr == nil {
		return nil
	}
	s.log.Warn("conntrack: cannot force the receive buffer; capped by net.core.rmem_max", "want", n, "err", serr)
	if err := s.events.SetReadBuffer(n); err != nil {
		return fmt.Errorf("conntrack: set receive buffer: %w", err)
	}
	return nil
}

// Stats returns the counters.
func (s *Source) Stats() Stats {
	return Stats{
		Events: s.stats.events.Load(), News: s.stats.news.Load(), Destroys: s.stats.destroys.Load(), Overruns: s.stats.overruns.Load(),
		Resyncs: s.stats.resyncs.Load(), ResyncStarts: s.stats.resyncStarts.Load(),
		ResyncDestroys: s.stats.resyncDestroys.Load(), StartFallbacks: s.stats.fallbacks.Load(),
		Undecodable: s.stats.undecodable.Load(), Open: s.stats.open.Load(),
		Updates: s.stats.updates.Load(), StateRestored: s.stats.stateRestored.Load(),
		StateCorrupt: s.stats.stateCorrupt.Load(), Redelivered: s.stats.redelivered.Load(),
	}
}

// MinActiveTimeout keeps the table dumps of active-timeout updates (one
// every half timeout) from becoming the agent's main work.
const MinActiveTimeout = time.Second

func (o *Options) check() error {
	if o.ActiveTimeout < 0 || o.ActiveTimeout > 0 && o.ActiveTimeout < MinActiveTimeout {
		return fmt.Errorf("conntrack: active timeout %v: give 0 (off) or at least %v", o.ActiveTimeout, MinActiveTimeout)
	}
	if o.ResyncInterval < 0 {
		return fmt.Errorf("conntrack: resync interval %v is negative (0 = only on start and overrun)", o.ResyncInterval)
	}
	if o.MaxStateFlows < 0 {
		return fmt.Errorf("conntrack: max state flows %d is negative (0 = default %d)", o.MaxStateFlows, DefaultMaxStateFlows)
	}
	return nil
}

// resyncPeriod is how often Run resynchronises: ResyncInterval, sooner
// when active-timeout updates need dumps; 0: never.
func (s *Source) resyncPeriod() time.Duration {
	p := s.o.ResyncInterval
	if a := s.o.ActiveTimeout / 2; a > 0 && (p <= 0 || a < p) {
		p = a
	}
	return p
}

// openState restores the open set from StateFile and starts persisting it.
func (s *Source) openState() error {
	if s.o.StateFile == "" {
		return nil
	}
	open, res, err := loadState(s.o.StateFile)
	if err != nil {
		return err
	}
	for _, e := range res.Errors {
		s.log.Warn("conntrack: damaged announced-flow set: " + e + " (flows it named may be announced again or left open)")
	}
	s.stats.stateCorrupt.Add(uint64(res.Corrupt))
	s.stats.stateRestored.Store(uint64(res.Flows))
	st, err := openStateLog(s.o.StateFile, s.o.MaxStateFlows, open, s.log)
	if err != nil {
		return err
	}
	s.tr.open, s.tr.state, s.tr.saved = open, st, len(open)
	s.stats.open.Store(uint64(len(open)))
	if len(open) > 0 {
		s.log.Info("conntrack: restored the announced open flows; the first resync closes those that ended meanwhile",
			"flows", len(open), "file", s.o.StateFile)
	}
	return nil
}

func (s *Source) closeState() error {
	if s.tr.state == nil {
		return nil
	}
	err := s.tr.state.close()
	s.tr.state = nil
	return err
}

// Undelivered hands back Destroys the caller emitted but could not deliver
// (its spool was full): the flows return to the open set (and state file),
// so the next resync, finding them gone, emits their Destroy again, marked
// ended-unobserved, with these counters. Safe from any goroutine.
func (s *Source) Undelivered(fs []Flow) {
	s.undeliveredMu.Lock()
	defer s.undeliveredMu.Unlock()
	for _, f := range fs {
		if f.Kind == Destroy {
			s.undelivered = append(s.undelivered, f)
		}
	}
}

// takeUndelivered moves the handed-back Destroys into the open set.
func (s *Source) takeUndelivered() {
	s.undeliveredMu.Lock()
	fs := s.undelivered
	s.undelivered = nil
	s.undeliveredMu.Unlock()
	for _, f := range fs {
		s.tr.reopen(f)
	}
	s.stats.redelivered.Add(uint64(len(fs)))
}

// Close closes the sockets and restores the sysctls Open changed. Call it
// after Run has returned; the Source cannot be used afterwards.
func (s *Source) Close() error {
	var errs []error
	s.mu.Lock() // Run's ctx watcher may still be setting a deadline
	if s.events != nil {
		errs = append(errs, s.events.Close())
		s.events = nil
	}
	s.mu.Unlock()
	if s.query != nil {
		errs = append(errs, s.query.Close())
		s.query = nil
	}
	if s.saved != nil {
		errs = append(errs, inNetNS(s.ns, func() error { return restoreSysctls(s.saved) }))
		s.saved = nil
	}
	errs = append(errs, s.closeState())
	if s.ns.IsOpen() {
		errs = append(errs, s.ns.Close())
	}
	return errors.Join(errs...)
}
