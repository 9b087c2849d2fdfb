// Package client is the typed Go client of the collector's HTTP API
// (package api): the flow list with its paging, the top talkers, the
// live tail's event stream, hosts, new pairs, suggestions and rejected
// events. The CLI (package cli) and the end-to-end tests use it.
//
// Every failure is an *Error that says whether the server refused the
// request (HTTP 4xx: asking again will not help) or was unavailable
// (unreachable, no answer in time, 5xx, an unreadable answer).
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/flowlog/flowlog/api"
)

// MaxPerPage is the largest page /api/v1/flows serves.
const MaxPerPage = 1000

// Client sends GET requests to one collector's API.
type Client struct {
	base    *url.URL
	token   string
	timeout time.Duration
	http    *http.Client
}

// New returns a client of the API at server (a URL, or host:port for plain
// http), sending token as a bearer token when set. timeout bounds each
// request (for Stream: until the stream opens).
func New(server, token string, timeout time.Duration) (*Client, error) {
	s := strings.TrimSpace(server)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	base, err := url.Parse(s)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" ||
		base.RawQuery != "" || base.Fragment != "" {
		return nil, fmt.Errorf("%q is not an http(s) URL such as http://127.0.0.1:8080", server)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("timeout %s is not positive", timeout)
	}
	base.Path = strings.TrimRight(base.Path, "/")
	base.RawPath = ""
	return &Client{base: base, token: token, timeout: timeout, http: &http.Client{}}, nil
}

// Host is the server's host:port, for messages.
func (c *Client) Host() string { return c.base.Host }

// Timeout is the per-request timeout New was given.
func (c *Client) Timeout() time.Duration { return c.timeout }

// URL is the address of path with query q on this server.
func (c *Client) URL(path string, q url.Values) string {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	return u.String()
}

// Error is why a request failed.
type Error struct {
	Refused bool   // HTTP 4xx: the request is wrong or not allowed
	Status  int    // the HTTP status, 0 when there was no answer
	msg     string // what happened, for people
}

func (e *Error) Error() string { return e.msg }

func unavailable(format string, args ...any) error {
	return &Error{msg: fmt.Sprintf(format, args...)}
}

// Envelope is the API's answer: Netmaker's SuccessResponse plus Next, the
// cursor of the following page (absent from servers that page by number).
type Envelope struct {
	Code     int
	Message  string
	Response json.RawMessage
	Next     *string
}

// GetJSON fetches path?q within the timeout and decodes the envelope.
func (c *Client) GetJSON(ctx context.Context, path string, q url.Values) (*Envelope, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.get(ctx, path, q, http.Header{"Accept": {"application/json"}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var env Envelope
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		if ctx.Err() != nil {
			return nil, unavailable("no complete answer from %s within %s (--timeout)", c.base.Host, c.timeout)
		}
		return nil, unavailable("unreadable answer from %s: %v", c.URL(path, q), err)
	}
	return &env, nil
}

// get sends the request with header h and returns a 2xx response; anything
// else is an *Error (a cancelled ctx is returned as is).
func (c *Client) get(ctx context.Context, path string, q url.Values, h http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL(path, q), nil)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "flowlog-cli")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			return nil, unavailable("no answer from %s within %s (--timeout)", c.base.Host, c.timeout)
		}
		return nil, unavailable("cannot reach the server: %v", err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp, nil
	}
	defer resp.Body.Close()
	msg := errorMessage(resp)
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		return nil, &Error{Refused: true, Status: resp.StatusCode, msg: fmt.Sprintf("server refused the request (%s): %s", resp.Status, msg)}
	}
	return nil, &Error{Status: resp.StatusCode, msg: fmt.Sprintf("server error (%s): %s", resp.Status, msg)}
}

// errorMessage is the Message of an error answer, or the start of its body
// when it is not the API's JSON (a proxy, a 404 of an older server).
func errorMessage(resp *http.Response) string {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var e struct{ Message string }
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		return e.Message
	}
	s := strings.TrimSpace(string(body))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	if s == "" {
		s = "(no message)"
	}
	return s
}

// rawArray splits a JSON array into its elements; null is empty.
func rawArray(data json.RawMessage) ([]json.RawMessage, error) {
	var out []json.RawMessage
	if len(data) == 0 {
		return out, nil
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("Response is not an array: %w", err)
	}
	return out, nil
}

// Page is one page of flows: decoded, and as the server sent each row (to
// print it unchanged).
type Page struct {
	Rows []api.FlowRow
	Raw  []json.RawMessage
}

// Flows fetches up to limit flows (0: all) matching q, page after page, and
// hands each page to emit; it returns how many it handed over. Pages follow
// the server's cursor (Next); a server that sends no Next at all (Netmaker,
// older collectors) is paged by number with a constant per_page instead.
// An error of emit ends the paging and is returned as is.
func (c *Client) Flows(ctx context.Context, q url.Values, limit int, emit func(Page) error) (int, error) {
	perPage := MaxPerPage
	if limit > 0 {
		perPage = min(limit, MaxPerPage)
	}
	var (
		n      int
		page   = 1
		cursor string
	)
	for {
		pq := url.Values{}
		for k, v := range q {
			pq[k] = v
		}
		want := perPage
		if cursor != "" && limit > 0 {
			want = min(limit-n, MaxPerPage)
		}
		pq.Set("per_page", strconv.Itoa(want))
		if cursor != "" {
			pq.Set("cursor", cursor)
		} else if page > 1 {
			pq.Set("page", strconv.Itoa(page))
		}
		env, err := c.GetJSON(ctx, "/api/v1/flows", pq)
		if err != nil {
			return n, err
		}
		raws, err := rawArray(env.Response)
		if err != nil {
			return n, unavailable("unreadable answer from %s: %v", c.URL("/api/v1/flows", pq), err)
		}
		if limit > 0 && n+len(raws) > limit {
			raws = raws[:limit-n]
		}
		rows := make([]api.FlowRow, len(raws))
		for i, r := range raws {
			if err := json.Unmarshal(r, &rows[i]); err != nil {
				return n, unavailable("unreadable flow in the answer: %v", err)
			}
		}
		if err := emit(Page{Rows: rows, Raw: raws}); err != nil {
			return n, err
		}
		n += len(rows)
		if len(rows) == 0 || (limit > 0 && n >= limit) {
			return n, nil
		}
		if env.Next != nil {
			next := strings.TrimSpace(*env.Next)
			if next == "" {
				return n, nil
			}
			if next == cursor {
				return n, unavailable("server sent the same cursor twice (%q); stopping", next)
			}
			cursor = next
			continue
		}
		if len(rows) < want {
			return n, nil
		}
		page++
	}
}

// Talker is one entry of /api/v1/aggregates/top.
type Talker struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Name    string `json:"name"`
	IP      string `json:"ip"`
	Prefix  string `json:"prefix"` // by=prefix
	Bytes   uint64 `json:"bytes"`
	Packets uint64 `json:"packets"`
	Flows   uint64 `json:"flows"`
}

// Top fetches the top talkers matching q (with by, metric, side, limit),
// decoded and as the server sent each.
func (c *Client) Top(ctx context.Context, q url.Values) ([]Talker, []json.RawMessage, error) {
	return getArray[Talker](ctx, c, "/api/v1/aggregates/top", q)
}

// Stream opens the live tail (/api/v1/flows/stream) of the flows matching
// q, resuming after the event lastID when set. The caller reads the
// Server-Sent Events from the body and closes it; ctx ends the stream.
func (c *Client) Stream(ctx context.Context, q url.Values, lastID string) (io.ReadCloser, error) {
	h := http.Header{"Accept": {"text/event-stream"}, "Cache-Control": {"no-cache"}}
	if lastID != "" {
		h.Set("Last-Event-ID", lastID)
	}
	resp, err := c.get(ctx, "/api/v1/flows/stream", q, h)
	if err != nil {
		return nil, err
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "text/event-stream") {
		resp.Body.Close()
		return nil, unavailable("%s answered %s, not an event stream", c.URL("/api/v1/flows/stream", q), ct)
	}
	return resp.Body, nil
}

// getArray fetches path?q and decodes its Response array into rows, keeping
// each element as the server sent it (to print it unchanged).
func getArray[T any](ctx context.Context, c *Client, path string, q url.Values) ([]T, []json.RawMessage, error) {
	env, err := c.GetJSON(ctx, path, q)
	if err != nil {
		return nil, nil, err
	}
	raws, err := rawArray(env.Response)
	if err != nil {
		return nil, nil, unavailable("unreadable answer from %s: %v", c.URL(path, q), err)
	}
	rows := make([]T, len(raws))
	for i, r := range raws {
		if err := json.Unmarshal(r, &rows[i]); err != nil {
			return nil, nil, unavailable("unreadable entry in the answer of %s: %v", path, err)
		}
	}
	return rows, raws, nil
}

// Suggestion is one entry of /api/v1/suggest: a value a filter field takes
// (Field "participant", "node_id" or "network_id") and its name (Label).
type Suggestion struct {
	Field string `json:"field"`
	Value string `json:"value"`
	Label string `json:"label"`
	Type  string `json:"type"`
	Flows uint64 `json:"flows"`
}

// Suggest fetches the values (ids and names) containing q's "q" that the
// filter fields take.
func (c *Client) Suggest(ctx context.Context, q url.Values) ([]Suggestion, error) {
	rows, _, err := getArray[Suggestion](ctx, c, "/api/v1/suggest", q)
	return rows, err
}

// Rejected fetches one page of rejected events (api.RejectedQuery builds q);
// the endpoint is for admin readers only.
func (c *Client) Rejected(ctx context.Context, q url.Values) ([]api.RejectedRow, []json.RawMessage, error) {
	return getArray[api.RejectedRow](ctx, c, api.RejectedPath, q)
}

// Host is one entry of /api/v1/hosts: a host that reported in the window.
type Host struct {
	HostID          string    `json:"host_id"`
	HostName        string    `json:"host_name"`
	Networks        []string  `json:"networks"`
	LastReport      time.Time `json:"last_report"`
	Quiet           bool      `json:"quiet"`
	Events          uint64    `json:"events"`
	EventsPerSecond float64   `json:"events_per_second"`
	Flows           uint64    `json:"flows"`
	Active          uint64    `json:"active"`
	Bytes           uint64    `json:"bytes"`
	Rejected        uint64    `json:"rejected"`
	Agents          []Agent   `json:"agents"`
}

// Agent is the software and wire generation a host reports through.
type Agent struct {
	Generation string    `json:"generation"`
	Agent      string    `json:"agent"`
	LastSeen   time.Time `json:"last_seen"`
}

// Hosts fetches the hosts that reported flows matching q (network_id,
// node_id, from, to, quiet).
func (c *Client) Hosts(ctx context.Context, q url.Values) ([]Host, []json.RawMessage, error) {
	return getArray[Host](ctx, c, "/api/v1/hosts", q)
}

// Endpoint is one side of a new pair: a participant, or an external address.
type Endpoint struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name"`
	IP   string `json:"ip"`
}

// NewPair is a conversation seen in the window but never in the baseline.
type NewPair struct {
	Src      Endpoint  `json:"src"`
	Dst      Endpoint  `json:"dst"`
	DstPort  uint16    `json:"dst_port"`
	Protocol uint8     `json:"protocol"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	Bytes    uint64    `json:"bytes"`
	Packets  uint64    `json:"packets"`
	Flows    uint64    `json:"flows"`
}

// NewPairs is the answer of /api/v1/new: the window [From, To), the start of
// the baseline before it, and the pairs, as decoded and as sent.
type NewPairs struct {
	From         time.Time `json:"from"`
	To           time.Time `json:"to"`
	BaselineFrom time.Time `json:"baseline_from"`
	Pairs        []NewPair `json:"pairs"`
	// Raw is the whole answer, RawPairs each pair, as the server sent them.
	Raw      json.RawMessage   `json:"-"`
	RawPairs []json.RawMessage `json:"-"`
}

// NewPairs fetches the pairs first seen in the window (q: the flow filters
// without time and state, window, baseline, limit).
func (c *Client) NewPairs(ctx context.Context, q url.Values) (*NewPairs, error) {
	const path = "/api/v1/new"
	env, err := c.GetJSON(ctx, path, q)
	if err != nil {
		return nil, err
	}
	var out NewPairs
	var raw struct {
		Pairs []json.RawMessage `json:"pairs"`
	}
	if err := json.Unmarshal(env.Response, &out); err != nil {
		return nil, unavailable("unreadable answer from %s: %v", c.URL(path, q), err)
	}
	if err := json.Unmarshal(env.Response, &raw); err != nil {
		return nil, unavailable("unreadable answer from %s: %v", c.URL(path, q), err)
	}
	out.Raw, out.RawPairs = env.Response, raw.Pairs
	return &out, nil
}
