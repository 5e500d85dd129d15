package nodes

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/nplab/nplab/lab/plane"
)

func TestFlowBook(t *testing.T) {
	client := netip.MustParseAddrPort("172.18.0.100:40000")
	k := flowKey{"TCP", client}
	t0 := time.Now()
	flow := func(start time.Time, pod string) plane.Flow {
		return plane.Flow{Protocol: "TCP", Client: client, Pod: pod, Start: start, Result: plane.FlowOK}
	}
	t.Run("a flow finished before the question", func(t *testing.T) {
		b := newFlowBook()
		b.add(flow(t0.Add(time.Millisecond), "web-1"))
		if f := b.wait(context.Background(), k, t0, time.Second); f == nil || f.Pod != "web-1" {
			t.Errorf("wait = %+v, want web-1's flow", f)
		}
	})
	t.Run("a flow finished while waiting", func(t *testing.T) {
		b := newFlowBook()
		go func() {
			time.Sleep(20 * time.Millisecond)
			b.add(flow(t0.Add(time.Millisecond), "web-2"))
		}()
		if f := b.wait(context.Background(), k, t0, 5*time.Second); f == nil || f.Pod != "web-2" {
			t.Errorf("wait = %+v, want web-2's flow", f)
		}
	})
	t.Run("an older flow of the same address is not this request's", func(t *testing.T) {
		b := newFlowBook()
		b.add(flow(t0.Add(-time.Second), "old"))
		start := time.Now()
		if f := b.wait(context.Background(), k, t0, 50*time.Millisecond); f != nil {
			t.Errorf("wait = %+v, want nil", f)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("wait took %v, bounded by 50ms", d)
		}
		if len(b.waiters) != 0 {
			t.Errorf("a waiter was left behind: %v", b.waiters)
		}
	})
	t.Run("another protocol or port is another flow", func(t *testing.T) {
		b := newFlowBook()
		b.add(plane.Flow{Protocol: "UDP", Client: client, Start: t0})
		b.add(plane.Flow{Protocol: "TCP", Client: netip.MustParseAddrPort("172.18.0.100:40001"), Start: t0})
		if f := b.wait(context.Background(), k, t0, 10*time.Millisecond); f != nil {
			t.Errorf("wait = %+v, want nil", f)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		b := newFlowBook()
		for i := range flowBookMax + 10 {
			b.add(plane.Flow{Protocol: "UDP", Client: netip.AddrPortFrom(client.Addr(), uint16(i)), Start: t0})
		}
		if n := len(b.recent); n > flowBookMax {
			t.Errorf("%d flows kept, want at most %d", n, flowBookMax)
		}
	})
}
