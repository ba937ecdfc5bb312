package agent

import (
	"net"
	"testing"
	"time"

	"github.com/gantry-gw/gantry/internal/wire"
)

// TestFailsOverBetweenControlPlanes: with several control plane addresses the agent connects to
// the first that answers; when that link ends it moves to the next one, announcing in basic_info
// the configuration it already serves, and keeps serving throughout.
func TestFailsOverBetweenControlPlanes(t *testing.T) {
	p := newPKI(t)
	gw := &fakeGateway{}
	// An address nobody listens on: the first attempt fails and the agent moves on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	_ = ln.Close()

	hashes := make(chan string, 1)
	first := newFakeCP(t, p, func(l *link) {
		if l.info.Gantry.ConfigHash != "" {
			t.Errorf("first link announced hash %q before serving anything", l.info.Gantry.ConfigHash)
		}
		l.send(&wire.Hello{ProtocolVersion: 1, Capabilities: []string{wire.CapRevisions}})
		h := l.sendRevision(3, testConfig(1))
		if _, ok := l.next().(*wire.Ack); !ok {
			t.Error("no ack from the first control plane")
		}
		hashes <- h
		// Returning ends the link: this control plane "dies".
	})
	announced := make(chan *wire.GantryHello, 1)
	second := newFakeCP(t, p, func(l *link) {
		announced <- l.info.Gantry
		l.hold()
	})
	a, logs := startAgent(t, Options{ControlPlanes: []string{dead, first.addr(), second.addr()}, TLSConfig: p.clientTLS(), Applier: gw})

	var want string
	select {
	case want = <-hashes:
	case <-time.After(10 * time.Second):
		t.Fatal("the agent never reached the second address")
	}
	var hello *wire.GantryHello
	select {
	case hello = <-announced:
	case <-time.After(10 * time.Second):
		t.Fatalf("the agent did not fail over to the third address; logs:\n%s", logs.String())
	}
	if hello.ConfigHash != want || hello.Revision != 3 {
		t.Fatalf("after failover basic_info announced %q revision %d, want %q revision 3", hello.ConfigHash, hello.Revision, want)
	}
	eventually(t, "status on the third address", func() bool {
		st := a.Status()
		return st.Connected && st.ControlPlane == second.addr() && len(st.ControlPlanes) == 3 && st.ConfigurationHash == want
	})
	if n := len(gw.applies()); n != 1 {
		t.Fatalf("gateway built %d configurations, want 1", n)
	}
	if len(first.connectTimes()) != 1 {
		t.Fatalf("first control plane saw %d links, want 1", len(first.connectTimes()))
	}
}
