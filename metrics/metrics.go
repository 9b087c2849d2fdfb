// Package metrics defines the Prometheus metrics of the collector (Collector)
// and of the agent (Agent) on a registry the caller provides, never the
// global default one, so that tests can make fresh ones.
//
// Two kinds of fields: counters and histograms the packages increment
// (ingest, the HTTP middleware), and Func/FuncVec values read at scrape time
// from counters a component already keeps (the spool's, conntrack's, the
// exporter's, the live tail's, the committer's pending rows), so nothing is
// counted twice. A Func that was never Set reads 0.
//
// Names are flowlog_..., with the unit in the name (_total, _seconds,
// _bytes); label values come from small fixed sets, never from free text.
package metrics

import (
	"maps"
	"runtime"
	"slices"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/flowlog/flowlog"
)

// NewRegistry returns a registry with the Go runtime and process collectors
// and flowlog_build_info registered, for a command's /metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name:        "flowlog_build_info",
		Help:        "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{"version": flowlog.Version(), "goversion": runtime.Version()},
	}, func() float64 { return 1 }))
	return reg
}

// Func is a value read at scrape time from a component's own counter. Set
// it once the component exists; until then it reads 0.
type Func struct {
	fn atomic.Pointer[func() float64]
}

// Set makes f the source of the value. Safe to call at any time.
func (f *Func) Set(fn func() float64) { f.fn.Store(&fn) }

func (f *Func) value() float64 {
	if p := f.fn.Load(); p != nil {
		return (*p)()
	}
	return 0
}

// FuncVec is a labelled family of values read at scrape time: the function
// returns one value per label value (its keys are the label's values, a
// small fixed set). Unset, it reports nothing. It is a prometheus.Collector.
type FuncVec struct {
	desc *prometheus.Desc
	typ  prometheus.ValueType
	fn   atomic.Pointer[func() map[string]float64]
}

func newFuncVec(typ prometheus.ValueType, name, help, label string) *FuncVec {
	return &FuncVec{desc: prometheus.NewDesc(name, help, []string{label}, nil), typ: typ}
}

// Set makes fn the source of the values. Safe to call at any time.
func (v *FuncVec) Set(fn func() map[string]float64) { v.fn.Store(&fn) }

// Describe implements prometheus.Collector.
func (v *FuncVec) Describe(ch chan<- *prometheus.Desc) { ch <- v.desc }

// Collect implements prometheus.Collector.
func (v *FuncVec) Collect(ch chan<- prometheus.Metric) {
	p := v.fn.Load()
	if p == nil {
		return
	}
	m := (*p)()
	for _, k := range slices.Sorted(maps.Keys(m)) {
		ch <- prometheus.MustNewConstMetric(v.desc, v.typ, m[k], k)
	}
}

// registerer registers on reg, or nowhere when reg is nil (metrics that are
// counted but not exported, e.g. ingest without Options.Metrics).
type registerer struct{ reg prometheus.Registerer }

func (r registerer) add(cs ...prometheus.Collector) {
	if r.reg != nil {
		r.reg.MustRegister(cs...)
	}
}

func (r registerer) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	r.add(c)
	return c
}

// counterVec pre-creates every value of its one label, so each is exported
// (as 0) before it first happens: rates and alerts need the series to exist.
func (r registerer) counterVec(name, help, label string, values ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
	for _, v := range values {
		c.WithLabelValues(v)
	}
	r.add(c)
	return c
}

func (r registerer) gaugeFunc(f *Func, name, help string) {
	r.add(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f.value))
}

func (r registerer) counterFunc(f *Func, name, help string) {
	r.add(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f.value))
}

func (r registerer) funcVec(typ prometheus.ValueType, name, help, label string) *FuncVec {
	v := newFuncVec(typ, name, help, label)
	r.add(v)
	return v
}
