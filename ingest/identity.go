package ingest

import (
	"github.com/flowlog/flowlog"
	"github.com/flowlog/flowlog/auth"
)

// checkIdentity binds an event to the stream's authenticated identity: the
// agent may report only as its own host, and only for the networks its
// identity allows (docs/design.md pitfall 6). id nil: the stream was allowed
// without identity, and any event passes. The error is the rejected event's
// reason.
func checkIdentity(e *flowlog.Event, id *auth.Identity) error {
	if id == nil {
		return nil
	}
	if e.HostID != id.HostID {
		return invalid(ReasonForbiddenHost, "host_id %q is not this agent's identity (authenticated as %q)", e.HostID, id.HostID)
	}
	if !id.AllowsNetwork(e.NetworkID) {
		return invalid(ReasonForbiddenNetwork, "network_id %q not allowed for host %q", e.NetworkID, id.HostID)
	}
	return nil
}
