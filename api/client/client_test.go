package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/flowlog/flowlog/api/client"
)

// A server with total flows, paged by cursor (the cursor is the next index).
func pagedServer(t *testing.T, total int) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		from, _ := strconv.Atoi(r.URL.Query().Get("cursor"))
		per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
		var rows []map[string]any
		for i := from; i < min(from+per, total); i++ {
			rows = append(rows, map[string]any{"flow_id": fmt.Sprint(i)})
		}
		next := ""
		if from+per < total {
			next = strconv.Itoa(from + per)
		}
		json.NewEncoder(w).Encode(map[string]any{"Code": 200, "Response": rows, "Next": next})
	}))
	t.Cleanup(s.Close)
	return s
}

func TestFlowsFollowsCursorsToTheLimit(t *testing.T) {
	s := pagedServer(t, 2500)
	c, err := client.New(s.URL, "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{0, 1500, 7} {
		var ids []string
		n, err := c.Flows(context.Background(), url.Values{}, limit, func(p client.Page) error {
			for i, r := range p.Rows {
				if string(p.Raw[i]) == "" {
					t.Fatal("raw row missing")
				}
				ids = append(ids, r.FlowID)
			}
			return nil
		})
		want := limit
		if limit == 0 {
			want = 2500
		}
		if err != nil || n != want || len(ids) != want || ids[want-1] != fmt.Sprint(want-1) {
			t.Fatalf("limit %d: %d flows (%v), want %d in order", limit, n, err, want)
		}
	}
}

func TestErrorsSayWhetherTheServerRefused(t *testing.T) {
	for code, refused := range map[int]bool{400: true, 403: true, 500: false, 503: false} {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			json.NewEncoder(w).Encode(map[string]any{"Code": code, "Message": "nope"})
		}))
		c, _ := client.New(s.URL, "", 5*time.Second)
		_, _, err := c.Top(context.Background(), url.Values{})
		s.Close()
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Refused != refused || ce.Status != code {
			t.Errorf("HTTP %d: %v (%+v), want refused=%v", code, err, ce, refused)
		}
	}
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	c, _ := client.New(down.URL, "", 5*time.Second)
	var ce *client.Error
	if _, _, err := c.Top(context.Background(), url.Values{}); !errors.As(err, &ce) || ce.Refused || ce.Status != 0 {
		t.Errorf("unreachable: %v", err)
	}
	if _, err := client.New("ftp://x", "", time.Second); err == nil {
		t.Error("ftp URL accepted")
	}
}
