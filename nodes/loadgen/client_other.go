//go:build !linux

package loadgen

import (
	"net/netip"
	"time"
)

// ConnResult is what Conns measured.
type ConnResult struct {
	PerSec     float64
	OK, Failed int
	FirstErr   error
}

// UDPResult is what UDP measured.
type UDPResult struct {
	Sent, Delivered uint64
	PerSec          float64
	LossPercent     float64
}

// RRResult is what RR measured.
type RRResult struct {
	Samples  int
	P50, P99 time.Duration
	CPU      int
}

// Bulk returns ErrNotSupported: the clients need Linux.
func Bulk(enter Enter, target netip.AddrPort, d time.Duration) (float64, error) {
	return 0, ErrNotSupported
}

// Conns returns ErrNotSupported: the clients need Linux.
func Conns(enter Enter, target netip.AddrPort, d time.Duration, workers int, wantHost string) (ConnResult, error) {
	return ConnResult{}, ErrNotSupported
}

// UDP returns ErrNotSupported: the clients need Linux.
func UDP(enter Enter, target netip.AddrPort, d time.Duration, rate int) (UDPResult, error) {
	return UDPResult{}, ErrNotSupported
}

// RR returns ErrNotSupported: the clients need Linux.
func RR(enter Enter, target netip.AddrPort, d time.Duration) (RRResult, error) {
	return RRResult{}, ErrNotSupported
}

// LockedEnter runs f.
func LockedEnter(f func() error) error { return f() }
