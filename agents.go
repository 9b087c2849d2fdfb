package flowlog

import (
	"context"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// AgentSighting is a host seen reporting through an agent: the agent's
// software (its gRPC user-agent, as "flowlog-agent/v1.2.3 grpc-go/1.70.0"
// or a stock netclient's "grpc-go/1.64.0") and the wire generation of its
// events ("v1.5+" or "v1.4", package ingest), last seen at LastSeen.
type AgentSighting struct {
	NetworkID, HostID string
	Generation        string
	Agent             string
	LastSeen          time.Time
}

// AgentRecorder keeps sightings, the latest per (network, host,
// generation); several collectors may write the same ones.
type AgentRecorder interface {
	RecordAgents(ctx context.Context, s []AgentSighting) error
}

// AgentPrefix starts the user-agent our agent sends, followed by its
// version (gRPC appends its own: "flowlog-agent/v1.2.3 grpc-go/1.70.0").
const AgentPrefix = "flowlog-agent/"

// MaxAgentLen bounds the user-agent kept of a sighting.
const MaxAgentLen = 200

// CleanAgent is a user-agent as kept: printable characters only, at most
// MaxAgentLen bytes (it comes from anyone who connects).
func CleanAgent(ua string) string {
	ua = strings.Map(func(r rune) rune {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, strings.TrimSpace(ua))
	for len(ua) > MaxAgentLen {
		_, n := utf8.DecodeLastRuneInString(ua)
		ua = ua[:len(ua)-n]
	}
	return ua
}
