// Package freelist keeps values of a finished job for the next one: the
// memory of a preparation (ingest) or of an insert block (store), each as
// large as its batch, allocated once instead of per job.
//
// Not a sync.Pool: with one worker per core, a value put on one P sits in
// that P's private slot, which another worker's Get cannot take, and every
// garbage collection empties the pool; under the bench nearly every insert
// built its columns anew (BENCHMARKS.md "Go heap under load"). A List
// holds at most as many values as jobs ever ran at once.
package freelist

import "sync"

// List is a stack of values kept for reuse, safe for concurrent use.
type List[T any] struct {
	mu   sync.Mutex
	free []T
}

// Get takes the value put last, or makes one with fresh when none is kept.
func (l *List[T]) Get(fresh func() T) T {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := len(l.free)
	if n == 0 {
		return fresh()
	}
	v := l.free[n-1]
	var zero T
	l.free[n-1] = zero
	l.free = l.free[:n-1]
	return v
}

// Put keeps v for a later Get; nothing else may refer to it.
func (l *List[T]) Put(v T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.free = append(l.free, v)
}
