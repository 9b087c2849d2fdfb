package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/flowlog/flowlog"
)

// Store is a flowlog.Store and flowlog.Aggregator whose reads and pings
// count their failures in flowlog_store_errors_total (op query and ping).
// Inserts are counted by ingest, which knows the batch. A failure whose
// context was canceled (the client left) is not the store's and does not
// count; a deadline that passed (a hung store) does.
type Store struct {
	flowlog.Store
	flowlog.Aggregator
	c *Collector
}

// InstrumentStore wraps the API's view of the store.
func (c *Collector) InstrumentStore(s flowlog.Store, a flowlog.Aggregator) *Store {
	return &Store{Store: s, Aggregator: a, c: c}
}

func (s *Store) count(ctx context.Context, op string, err error) {
	if err != nil && !errors.Is(ctx.Err(), context.Canceled) {
		s.c.StoreErrors.WithLabelValues(op).Inc()
	}
}

func (s *Store) Flows(ctx context.Context, f flowlog.Filter, p flowlog.Page) ([]flowlog.Flow, error) {
	r, err := s.Store.Flows(ctx, f, p)
	s.count(ctx, StoreQuery, err)
	return r, err
}

func (s *Store) Ping(ctx context.Context) error {
	err := s.Store.Ping(ctx)
	s.count(ctx, StorePing, err)
	return err
}

func (s *Store) Top(ctx context.Context, q flowlog.TopQuery) ([]flowlog.Talker, error) {
	r, err := s.Aggregator.Top(ctx, q)
	s.count(ctx, StoreQuery, err)
	return r, err
}

func (s *Store) Matrix(ctx context.Context, f flowlog.Filter, limit int) ([]flowlog.Edge, error) {
	r, err := s.Aggregator.Matrix(ctx, f, limit)
	s.count(ctx, StoreQuery, err)
	return r, err
}

func (s *Store) Series(ctx context.Context, f flowlog.Filter, step time.Duration) ([]flowlog.Point, error) {
	r, err := s.Aggregator.Series(ctx, f, step)
	s.count(ctx, StoreQuery, err)
	return r, err
}

func (s *Store) Active(ctx context.Context, f flowlog.Filter) (uint64, error) {
	r, err := s.Aggregator.Active(ctx, f)
	s.count(ctx, StoreQuery, err)
	return r, err
}
