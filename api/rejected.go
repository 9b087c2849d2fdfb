package api

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/metrics"
)

// /api/v1/rejected lists the events the collector rejected (kept in
// rejected_events, named in their acks), so that an agent whose events are
// refused is found without reading logs. Admin readers only (Access): a
// rejected event carries no network a scope could be checked against.

// RejectedPath is the endpoint, for clients (the CLI).
const RejectedPath = "/api/v1/rejected"

var rejectedParams = paramSpec{single: []string{"host_id", "reason", "from", "to", "page", "per_page"}}

// RejectedRow is one rejected event as the API answers it.
type RejectedRow struct {
	ReceivedAt  time.Time       `json:"received_at"`
	Peer        string          `json:"peer"`    // the stream's remote address
	HostID      string          `json:"host_id"` // as the event claimed it; may be empty
	Index       int             `json:"index"`   // position in its envelope
	Reason      string          `json:"reason"`
	ReasonClass string          `json:"reason_class"`
	Event       json.RawMessage `json:"event"` // the event as received (protobuf JSON)
}

// parseRejectedQuery reads the filters and page of /api/v1/rejected; our
// own endpoint, so strict: a bad value is a 400 naming it.
func parseRejectedQuery(q url.Values) (flowlog.RejectedFilter, flowlog.Page, error) {
	var f flowlog.RejectedFilter
	p := flowlog.Page{}
	if err := rejectedParams.check(q); err != nil {
		return f, p, err
	}
	get := getter(q)
	f.HostID = get("host_id")
	if c := get("reason"); c != "" {
		if !slices.Contains(metrics.RejectReasons, c) {
			return f, p, fmt.Errorf("invalid reason %q: must be one of %s", c, strings.Join(metrics.RejectReasons, ", "))
		}
		f.Class = c
	}
	var err error
	if f.From, err = parseTime("from", get("from")); err != nil {
		return f, p, err
	}
	if f.To, err = parseTime("to", get("to")); err != nil {
		return f, p, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.From.After(f.To) {
		return f, p, fmt.Errorf("invalid from %q: must not be after to %q", get("from"), get("to"))
	}
	if p.Number, err = parseInt("page", get("page"), 1, 1, math.MaxInt32); err != nil {
		return f, p, err
	}
	if p.PerPage, err = parseInt("per_page", get("per_page"), defaultPerPage, 1, maxPerPage); err != nil {
		return f, p, err
	}
	return f, p, nil
}

func (s *Server) listRejected(w http.ResponseWriter, r *http.Request) {
	q, ok := s.query(w, r)
	if !ok {
		return
	}
	f, p, err := parseRejectedQuery(q)
	if err != nil {
		s.writeError(w, r, http.StatusBadRequest, err.Error())
		return
	}
	if s.rejected == nil {
		s.writeError(w, r, http.StatusNotImplemented, "rejected events are not available from this store")
		return
	}
	list, err := s.rejected.Rejected(r.Context(), f, p)
	if s.failed(w, r, err, "rejected events") {
		return
	}
	rows := make([]RejectedRow, len(list))
	for i, x := range list {
		ev := json.RawMessage(x.Event)
		if !json.Valid(ev) { // stored as text; never let it break the answer
			ev, _ = json.Marshal(x.Event)
		}
		rows[i] = RejectedRow{ReceivedAt: x.Received, Peer: x.Peer, HostID: x.HostID, Index: x.Index,
			Reason: x.Reason, ReasonClass: x.Class, Event: ev}
	}
	s.writeJSON(w, r, http.StatusOK, successResponse{Code: http.StatusOK, Message: "rejected events retrieved successfully", Response: rows})
}

// RejectedQuery is the query string of /api/v1/rejected for f and p, for
// clients (the CLI's `flowlog rejected`); zero values are left out.
func RejectedQuery(f flowlog.RejectedFilter, p flowlog.Page) url.Values {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("host_id", f.HostID)
	set("reason", f.Class)
	if !f.From.IsZero() {
		q.Set("from", f.From.UTC().Format(time.RFC3339Nano))
	}
	if !f.To.IsZero() {
		q.Set("to", f.To.UTC().Format(time.RFC3339Nano))
	}
	if p.Number > 0 {
		q.Set("page", strconv.Itoa(p.Number))
	}
	if p.PerPage > 0 {
		q.Set("per_page", strconv.Itoa(p.PerPage))
	}
	return q
}

// RejectedHeader and RejectedCells are a table of rejected events, for
// clients: one row per event, the reason last (it is the long part).
var RejectedHeader = []string{"RECEIVED", "HOST", "PEER", "INDEX", "CLASS", "REASON"}

func RejectedCells(r *RejectedRow, loc *time.Location) []string {
	host := r.HostID
	if host == "" {
		host = "-"
	}
	return []string{r.ReceivedAt.In(loc).Format("2006-01-02 15:04:05.000"), host, r.Peer, strconv.Itoa(r.Index), r.ReasonClass, r.Reason}
}
