// Package tui is the student's terminal window onto a lab (bubbletea).
// (Not built yet.)
package tui
