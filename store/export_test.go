package store

// FlowsSQL exposes the flows query to tests that EXPLAIN it.
var FlowsSQL = (*Store).flowsSQL
