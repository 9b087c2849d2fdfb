// Generated from the Go domain package (protocol.go, flowlog.go) by `go generate .`; do not edit.

export const protocolNames: Record<number, string> = { 1: "icmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp", 51: "ah", 58: "icmpv6", 132: "sctp", };

export const participantTypes = ["node", "user", "extclient", "egress_route", "external"] as const;
export const directions = ["ingress", "egress"] as const;

// portProtocols are the protocols whose flows have meaningful ports.
export const portProtocols: readonly number[] = [6, 17, 132];
