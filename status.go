package flowlog

// StatusEndedUnobserved is set in an event's status (the conntrack IPS_*
// bitmask, whose kernel bits end at bit 15) on a DESTROY the agent made up
// for a flow it had announced and later found gone from the kernel's table
// without seeing it end: it closed while the agent was down, or its DESTROY
// was lost (netlink overrun, full spool). The counters are the last the
// agent knew (its last active-timeout update, zero without one) and the end
// time is when the agent noticed, not when the flow ended.
const StatusEndedUnobserved uint32 = 1 << 31
