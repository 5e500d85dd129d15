package tui

import "github.com/charmbracelet/bubbles/key"

// keyMap is every key of the running lab, with its help text.
type keyMap struct {
	Traffic, TrafficAll, Proto          key.Binding
	DeletePod, Ready, App               key.Binding
	Link, Impair                        key.Binding
	Policy, ScaleUp, ScaleDown, Apply   key.Binding
	Check, Hint, Next, Prev, Explain    key.Binding
	Up, Down, Tab, ShiftTab, Help, Quit key.Binding
	Esc                                 key.Binding
}

func newKeyMap() keyMap {
	b := func(keys []string, k, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(k, desc))
	}
	return keyMap{
		Traffic:    b([]string{"t"}, "t", "traffic"),
		TrafficAll: b([]string{"T"}, "T", "all nodes"),
		Proto:      b([]string{"p"}, "p", "proto"),
		DeletePod:  b([]string{"x"}, "x", "delete pod"),
		Ready:      b([]string{"r"}, "r", "readiness"),
		App:        b([]string{"s"}, "s", "stop/start app"),
		Link:       b([]string{"d"}, "d", "node link"),
		Impair:     b([]string{"l"}, "l", "delay+loss"),
		Policy:     b([]string{"e"}, "e", "policy"),
		ScaleUp:    b([]string{"+", "="}, "+", "scale up"),
		ScaleDown:  b([]string{"-"}, "-", "scale down"),
		Apply:      b([]string{"a"}, "a", "apply file"),
		Check:      b([]string{"c"}, "c", "check"),
		Hint:       b([]string{"h"}, "h", "hint"),
		Next:       b([]string{"n"}, "n", "next"),
		Prev:       b([]string{"b"}, "b", "back"),
		Explain:    b([]string{"enter"}, "⏎", "explain"),
		Up:         b([]string{"up", "k"}, "↑", "up"),
		Down:       b([]string{"down", "j"}, "↓", "down"),
		Tab:        b([]string{"tab", "right"}, "tab", "next pane"),
		ShiftTab:   b([]string{"shift+tab", "left"}, "⇧tab", "prev pane"),
		Help:       b([]string{"?"}, "?", "help"),
		Quit:       b([]string{"q", "ctrl+c"}, "q", "quit"),
		Esc:        b([]string{"esc"}, "esc", "close"),
	}
}

// ShortHelp is the help bar: the keys a student needs first.
func (k keyMap) ShortHelp() []key.Binding {
	// ? and q first: a narrow terminal cuts the bar's end, and these two
	// lead to everything else.
	return []key.Binding{k.Help, k.Quit, k.Traffic, k.TrafficAll, k.Proto, k.DeletePod, k.Ready, k.Link, k.Policy, k.Explain, k.Next}
}

// FullHelp is `?`: every key, by what it acts on.
func (k keyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Traffic, k.TrafficAll, k.Proto, k.Explain},
		{k.DeletePod, k.Ready, k.App},
		{k.Link, k.Impair, k.Policy, k.ScaleUp, k.ScaleDown},
		{k.Apply, k.Check, k.Hint, k.Next, k.Prev},
		{k.Up, k.Down, k.Tab, k.ShiftTab, k.Help, k.Quit},
	}
}
