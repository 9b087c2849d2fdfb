package chserver

import (
	"errors"
	"fmt"

	chproto "github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2"
)

// Error is a failed statement with its class.
//
// The classes are the embedded engine's: the store's caller (the ingest)
// answers every store error with success=false, and the agent retries, so
// no class drops data. What the class adds is the diagnosis: a transient
// error (server or network down, overload, a replica without Keeper, a
// timeout) heals by itself and a retry succeeds; a permanent one (bad
// credentials or grants, a schema or statement the server refuses) needs
// an operator, and retries fail until then. Unknown codes count as
// transient: an unknown failure must never make anything give up.
type Error struct {
	Op        string
	Code      int32 // the server's exception code; 0 when none (network, timeout)
	Permanent bool
	Err       error
}

func (e *Error) Error() string {
	class := "transient"
	if e.Permanent {
		class = "permanent"
	}
	return fmt.Sprintf("ClickHouse %s failed (%s): %v", e.Op, class, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// IsPermanent reports whether err is a server error that a retry will not
// fix until someone changes the server, its users or flowlog's schema.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

// permanentCodes are the exception codes that mean "this statement, this
// data or these credentials are wrong", not "try again".
var permanentCodes = map[chproto.Error]bool{
	chproto.ErrCannotParseText:                 true,
	chproto.ErrThereIsNoColumn:                 true,
	chproto.ErrNoSuchColumnInTable:             true,
	chproto.ErrNumberOfColumnsDoesntMatch:      true,
	chproto.ErrCannotParseInputAssertionFailed: true,
	chproto.ErrCannotReadAllData:               true,
	chproto.ErrBadArguments:                    true,
	chproto.ErrIllegalTypeOfArgument:           true,
	chproto.ErrIllegalColumn:                   true,
	chproto.ErrUnknownFunction:                 true,
	chproto.ErrUnknownIdentifier:               true,
	chproto.ErrNotImplemented:                  true,
	chproto.ErrTypeMismatch:                    true,
	chproto.ErrUnknownTable:                    true,
	chproto.ErrSyntaxError:                     true,
	chproto.ErrUnknownFormat:                   true,
	chproto.ErrIncorrectQuery:                  true,
	chproto.ErrUnknownDatabase:                 true,
	chproto.ErrUnknownSetting:                  true,
	chproto.ErrIncorrectData:                   true,
	chproto.ErrReadonly:                        true,
	chproto.ErrUnknownUser:                     true,
	chproto.ErrWrongPassword:                   true,
	chproto.ErrRequiredPassword:                true,
	chproto.ErrSupportIsDisabled:               true,
	chproto.ErrAccessDenied:                    true,
	chproto.ErrAuthenticationFailed:            true,
	chproto.ErrClusterDoesntExist:              true,
}

// classify wraps a driver error with its class; nil stays nil.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	e := &Error{Op: op, Err: err}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		e.Code = ex.Code
		e.Permanent = permanentCodes[chproto.Error(ex.Code)]
	}
	return e
}
