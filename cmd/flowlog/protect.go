package main

import (
	"fmt"
	"time"

	"github.com/flowlog/flowlog/api"
	"github.com/flowlog/flowlog/ingest"
)

// protectFlags are `flowlog serve`'s abuse limits (SECURITY.md): per-host
// ingest rate, stalled agent streams, HTTP timeouts and sizes. Embedded in
// serveCmd.
type protectFlags struct {
	IngestRate         int           `name:"ingest-rate" help:"Events per second one agent host may send (its authenticated host_id, else its IP address); more is answered success=false, retry later. 0: unlimited." default:"50000" env:"FLOWLOG_INGEST_RATE"`
	IngestBurst        int           `name:"ingest-burst" help:"Events a host may send at once above --ingest-rate (token bucket size); 0: twice the rate. At least --max-events-per-envelope." default:"0" env:"FLOWLOG_INGEST_BURST"`
	StreamStallTimeout time.Duration `name:"stream-stall-timeout" help:"End an agent stream whose acks could not be sent this long (the agent stopped reading). 0: never." default:"60s" env:"FLOWLOG_STREAM_STALL_TIMEOUT"`

	HTTPReadHeaderTimeout time.Duration `name:"http-read-header-timeout" help:"HTTP: time to read a request's headers." default:"10s" env:"FLOWLOG_HTTP_READ_HEADER_TIMEOUT"`
	HTTPReadTimeout       time.Duration `name:"http-read-timeout" help:"HTTP: time to read a whole request." default:"30s" env:"FLOWLOG_HTTP_READ_TIMEOUT"`
	HTTPWriteTimeout      time.Duration `name:"http-write-timeout" help:"HTTP: time to answer a request, its query included (the live tail is exempt)." default:"2m" env:"FLOWLOG_HTTP_WRITE_TIMEOUT"`
	HTTPIdleTimeout       time.Duration `name:"http-idle-timeout" help:"HTTP: how long a keep-alive connection may wait for its next request." default:"2m" env:"FLOWLOG_HTTP_IDLE_TIMEOUT"`
	HTTPMaxHeaderBytes    int           `name:"http-max-header-bytes" help:"HTTP: largest request line and headers, in bytes." default:"65536" env:"FLOWLOG_HTTP_MAX_HEADER_BYTES"`
}

// validate refuses limits that cannot work, naming the flag.
func (p *protectFlags) validate(maxEventsPerEnvelope int) error {
	if p.IngestRate < 0 || p.IngestBurst < 0 {
		return fmt.Errorf("--ingest-rate and --ingest-burst must not be negative")
	}
	if p.IngestRate > 0 && p.IngestBurst > 0 && p.IngestBurst < maxEventsPerEnvelope {
		return fmt.Errorf("--ingest-burst (%d) must be at least --max-events-per-envelope (%d): a full envelope would never pass", p.IngestBurst, maxEventsPerEnvelope)
	}
	if p.StreamStallTimeout < 0 {
		return fmt.Errorf("--stream-stall-timeout must not be negative (0 turns it off)")
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{
		{"--http-read-header-timeout", p.HTTPReadHeaderTimeout}, {"--http-read-timeout", p.HTTPReadTimeout},
		{"--http-write-timeout", p.HTTPWriteTimeout}, {"--http-idle-timeout", p.HTTPIdleTimeout},
	} {
		if f.d <= 0 {
			return fmt.Errorf("%s must be positive, got %s", f.name, f.d)
		}
	}
	if p.HTTPMaxHeaderBytes < 1024 {
		return fmt.Errorf("--http-max-header-bytes must be at least 1024, got %d", p.HTTPMaxHeaderBytes)
	}
	return nil
}

// ingest is the gRPC side's protection.
func (p *protectFlags) ingest() ingest.Protection {
	stall := p.StreamStallTimeout
	if stall == 0 {
		stall = -1 // the flag's 0 is "never"; ingest's 0 is "default"
	}
	return ingest.Protection{Rate: float64(p.IngestRate), Burst: p.IngestBurst, StallTimeout: stall}
}

// http is the HTTP listener's limits.
func (p *protectFlags) http() api.HTTPLimits {
	return api.HTTPLimits{
		ReadHeaderTimeout: p.HTTPReadHeaderTimeout, ReadTimeout: p.HTTPReadTimeout,
		WriteTimeout: p.HTTPWriteTimeout, IdleTimeout: p.HTTPIdleTimeout, MaxHeaderBytes: p.HTTPMaxHeaderBytes,
	}
}
