package tui

import (
	"fmt"
	"testing"

	bt "github.com/charmbracelet/bubbletea"

	"github.com/nplab/nplab/lab"
)

func TestSmoke(t *testing.T) {
	l := newLab(t)
	l.Apply("default.yaml", lab.DefaultManifest)
	h := running(t, l, &fakeLesson{})
	h.events(h.listening()...)
	h.events(h.flow("node-1", h.podOn("node-2"), "TCP", "ok"), h.flow("node-2", h.podOn("node-2"), "TCP", "ok"), h.flow("node-3", "", "TCP", "refused"))
	fmt.Println(h.m.View())
	h.send(bt.WindowSizeMsg{Width: 80, Height: 24})
	fmt.Println(h.m.View())
	h.key("enter")
	fmt.Println(h.m.View())
}
