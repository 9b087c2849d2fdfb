package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/flowlog/flowlog"
)

// The console's reads (flowlog.Insights), counted like the others. A
// wrapped store without them answers errors.ErrUnsupported (the API: 501).

var _ flowlog.Insights = (*Store)(nil)

func (s *Store) insights() (flowlog.Insights, error) {
	if in, ok := s.Store.(flowlog.Insights); ok {
		return in, nil
	}
	return nil, errors.ErrUnsupported
}

func (s *Store) Hosts(ctx context.Context, f flowlog.Filter) ([]flowlog.HostSummary, error) {
	in, err := s.insights()
	if err != nil {
		return nil, err
	}
	r, err := in.Hosts(ctx, f)
	s.count(ctx, StoreQuery, err)
	return r, err
}

func (s *Store) NewPairs(ctx context.Context, q flowlog.NewPairsQuery) ([]flowlog.NewPair, error) {
	in, err := s.insights()
	if err != nil {
		return nil, err
	}
	r, err := in.NewPairs(ctx, q)
	s.count(ctx, StoreQuery, err)
	return r, err
}

func (s *Store) Suggest(ctx context.Context, f flowlog.Filter, text string, limit int) ([]flowlog.Suggestion, error) {
	in, err := s.insights()
	if err != nil {
		return nil, err
	}
	r, err := in.Suggest(ctx, f, text, limit)
	s.count(ctx, StoreQuery, err)
	return r, err
}

func (s *Store) SeriesBy(ctx context.Context, f flowlog.Filter, step time.Duration, by string, limit int) ([]flowlog.GroupPoint, error) {
	in, err := s.insights()
	if err != nil {
		return nil, err
	}
	r, err := in.SeriesBy(ctx, f, step, by, limit)
	s.count(ctx, StoreQuery, err)
	return r, err
}
