//go:build !linux

package content

import (
	"errors"
	"os"
)

// setDirect: no direct I/O here; ingests write through the page cache.
func setDirect(f *os.File, on bool) error {
	if on {
		return errors.ErrUnsupported
	}
	return nil
}

func isDirectRefused(err error) bool { return false }

func openDirect(f *os.File) (*os.File, error) { return nil, errors.ErrUnsupported }
