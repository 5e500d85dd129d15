package scenarios

import (
	"errors"
	"syscall"
)

// sctpError opens and closes an SCTP socket, as the data plane would.
func sctpError() error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, syscall.IPPROTO_SCTP)
	if err != nil {
		return errors.New("kernel lacks SCTP: " + err.Error() + " (module sctp)")
	}
	syscall.Close(fd)
	return nil
}
