//go:build !linux

package scenarios

import "errors"

func sctpError() error { return errors.New("SCTP needs Linux (module sctp)") }
