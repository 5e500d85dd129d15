//go:build !linux

package loadgen

import "net"

// echo answers size-byte messages until EOF; pinning needs Linux.
func echo(c net.Conn, cpu, size int) { echoConn(c, size) }

// growReadBuffer asks for a receive buffer of n bytes.
func growReadBuffer(uc *net.UDPConn, n int) { uc.SetReadBuffer(n) }
