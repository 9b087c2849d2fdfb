package store

import (
	"fmt"
	"strconv"

	"github.com/flowlog/flowlog"
)

// sortExpr is a merged flow's sort value in SQL, as flowlog.Sort.SortValue
// computes it from a Flow (nil for the start sort, whose key is start_ts).
func sortExpr(k flowlog.SortKey) string {
	switch k {
	case flowlog.SortBytes:
		return "(bytes_sent + bytes_recv)"
	case flowlog.SortDuration:
		return fmt.Sprintf("if(event_type = 'destroy', toUInt64(greatest(toUnixTimestamp64Milli(end_ts) - toUnixTimestamp64Milli(start_ts), 0)), "+
			"toUInt64(%d + (%d - toUnixTimestamp64Milli(start_ts))))", uint64(flowlog.OpenDurationBase), flowlog.MaxVersion)
	}
	return ""
}

// sortTuple is the listing's order as a tuple: (value, start, flow id) or
// (start, flow id).
func sortTuple(k flowlog.SortKey) string {
	if e := sortExpr(k); e != "" {
		return "(" + e + ", start_ts, flow_id)"
	}
	return "(start_ts, flow_id)"
}

// orderBy orders a listing: every part of the tuple in the sort's direction.
func orderBy(s flowlog.Sort) string {
	dir := " DESC"
	if s.Asc {
		dir = " ASC"
	}
	o := "start_ts" + dir + ", flow_id" + dir
	if e := sortExpr(s.Key); e != "" {
		o = e + dir + ", " + o
	}
	return "ORDER BY " + o
}

// afterCond selects the flows strictly after a cursor in its listing.
func afterCond(a *flowlog.Cursor) string {
	op, v := "<", ""
	if a.Sort.Asc {
		op = ">"
	}
	if sortExpr(a.Sort.Key) != "" {
		v = strconv.FormatUint(a.Value, 10) + ", "
	}
	return fmt.Sprintf("%s %s (%s%s, %s)", sortTuple(a.Sort.Key), op, v, ms(a.Start), quote(a.FlowID))
}

// CursorOf is the cursor after a flow in the default listing (newest
// start first): pass the last flow of a page as Page.After to get the next
// page. Other orders: Sort.CursorOf.
func CursorOf(f *flowlog.Flow) *flowlog.Cursor {
	return flowlog.Sort{}.CursorOf(f)
}
