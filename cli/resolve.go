package cli

import (
	"context"
	"errors"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/flowlog/flowlog/api/client"
)

// Names where ids are expected: `--host web-1` means the host named web-1.
// The collector's /api/v1/suggest (the page's filter suggestions) knows
// which id each name belongs to, for hosts (node_id) and participants.

// idParam is a query parameter that takes an id, the suggest field that
// names its values, and the flag that set it (for messages).
type idParam struct{ param, field, flag string }

var idParams = []idParam{
	{"node_id", "node_id", "host"},
	{"src_entity_id", "participant", "src-entity"},
	{"dst_entity_id", "participant", "dst-entity"},
	{"participant", "participant", "participant"},
	{"host_id", "node_id", "host"}, // /api/v1/rejected
}

// uuidLike values are Netmaker's ids: they are taken as ids without asking.
var uuidLike = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// resolveNames replaces, in q, every value of an id parameter that is the
// name (case-insensitive) of exactly one id by that id. A value that is an
// id, or that no flow names, is left as given (the server answers for it);
// a name of several ids is a usage error listing them. A server without
// the suggest endpoint (404, 501: older or Netmaker's) leaves values as
// given too.
func resolveNames(ctx context.Context, cl *client.Client, q url.Values) error {
	for _, p := range idParams {
		v := q.Get(p.param)
		if v == "" || uuidLike.MatchString(v) {
			continue
		}
		sq := url.Values{"q": {v}, "limit": {"200"}}
		for _, k := range []string{"network_id", "from", "to"} {
			if x := q.Get(k); x != "" {
				sq.Set(k, x)
			}
		}
		got, err := cl.Suggest(ctx, sq)
		var ce *client.Error
		if errors.As(err, &ce) && (ce.Refused || ce.Status == 501) {
			return nil // no suggestions here: ids only
		}
		if err != nil {
			return err
		}
		id, err := idOf(p, v, got)
		if err != nil {
			return err
		}
		q.Set(p.param, id)
	}
	return nil
}

// idOf is the id that v stands for among the suggestions.
func idOf(p idParam, v string, got []client.Suggestion) (string, error) {
	var ids []string
	for _, s := range got {
		if s.Field != p.field {
			continue
		}
		if s.Value == v {
			return v, nil // an id
		}
		if strings.EqualFold(s.Label, v) && !slices.Contains(ids, s.Value) {
			ids = append(ids, s.Value)
		}
	}
	switch len(ids) {
	case 0:
		return v, nil
	case 1:
		return ids[0], nil
	}
	what := "hosts"
	if p.field == "participant" {
		what = "participants"
	}
	return "", flagError(p.flag, "%q names %s %s (%s); give the id", v, strconv.Itoa(len(ids)), what, strings.Join(ids, ", "))
}
