// Package errdefs is berth's one vocabulary of error classes. Errors are
// wrapped with %w everywhere and mapped to HTTP or gRPC codes only at the edge.
package errdefs

import "errors"

// Class sentinels. Wrap them: fmt.Errorf("container %s: %w", id, errdefs.ErrNotFound).
var (
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrInvalidArgument    = errors.New("invalid argument")
	ErrConflict           = errors.New("conflict")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrUnavailable        = errors.New("unavailable")
	ErrNotImplemented     = errors.New("not implemented")
	ErrPermissionDenied   = errors.New("permission denied")
)

// IsNotFound reports whether err is of the NotFound class.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsAlreadyExists reports whether err is of the AlreadyExists class.
func IsAlreadyExists(err error) bool { return errors.Is(err, ErrAlreadyExists) }

// IsInvalidArgument reports whether err is of the InvalidArgument class.
func IsInvalidArgument(err error) bool { return errors.Is(err, ErrInvalidArgument) }

// IsConflict reports whether err is of the Conflict class.
func IsConflict(err error) bool { return errors.Is(err, ErrConflict) }

// IsFailedPrecondition reports whether err is of the FailedPrecondition class.
func IsFailedPrecondition(err error) bool { return errors.Is(err, ErrFailedPrecondition) }
