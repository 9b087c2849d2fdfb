package flowlog

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// The collector's answer to an envelope over its event limit, which ends the
// stream (InvalidArgument). The agent reads the limit back from it and
// splits what it sends, so the wording lives here, once.

// TooManyEvents is the message for an envelope of n events over limit.
func TooManyEvents(n, limit int) string {
	return fmt.Sprintf("envelope has %d events: limit is %d per envelope; split it", n, limit)
}

// ParseTooManyEvents reads the limit back from a TooManyEvents message
// (anywhere in msg, which may carry a prefix such as a gRPC status).
func ParseTooManyEvents(msg string) (limit int, ok bool) {
	i := strings.Index(msg, "envelope has ")
	if i < 0 {
		return 0, false
	}
	var n int
	if _, err := fmt.Sscanf(msg[i:], "envelope has %d events: limit is %d per envelope", &n, &limit); err != nil || limit <= 0 {
		return 0, false
	}
	return limit, true
}

// ParseMessageTooLarge reads the byte limit from grpc's refusal of a message
// over the receiver's limit ("grpc: received message larger than max (N vs.
// M)").
func ParseMessageTooLarge(msg string) (limit int, ok bool) {
	i := strings.Index(msg, "larger than max (")
	if i < 0 {
		return 0, false
	}
	var n int
	if _, err := fmt.Sscanf(msg[i:], "larger than max (%d vs. %d)", &n, &limit); err != nil || limit <= 0 {
		return 0, false
	}
	return limit, true
}

type ingestKey struct{}

// IngestContext marks ctx as the ingest's (group commits, readiness): an
// engine runs its statements on capacity reserved for them, which queries
// cannot take, however many or slow they are.
func IngestContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, ingestKey{}, true)
}

// IsIngest reports whether ctx was marked by IngestContext.
func IsIngest(ctx context.Context) bool {
	v, _ := ctx.Value(ingestKey{}).(bool)
	return v
}

// ErrPageTooDeep is matched (errors.Is) by the error of a listing whose page
// starts deeper than the store allows by offset: cursor paging reaches any
// depth at the cost of the first page. The API answers 400.
var ErrPageTooDeep = errors.New("page too deep")

// ErrQueryLimit is matched by the error of a query the store stopped for
// its cost (time, memory or rows read over the configured limits). The API
// answers 503 with the message: narrow the request or retry later.
var ErrQueryLimit = errors.New("query over the store's limits")

// IdleStream begins the status of a stream the collector ended for being
// idle: nothing went wrong, and the agent reconnects without complaint.
const IdleStream = "idle stream: "
