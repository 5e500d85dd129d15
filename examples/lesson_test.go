package examples_test

import (
	"context"
	"fmt"

	"github.com/nplab/nplab/lab"
	"github.com/nplab/nplab/scenarios"
)

// lesson is a scenario an instructor might write: the docs' collision of
// two Services on one nodePort, and a task to fix it. It sends no traffic,
// so it runs on the control plane alone, without root.
const lesson = `
name: collision-lite
title: Two Services, one nodePort
summary: The frontend has 30080; the backend must find another nodePort.
cluster:
  nodes: 3
steps:
  - name: The frontend takes 30080
    apply:
      name: frontend-service.yaml
      inline: |
        apiVersion: v1
        kind: Service
        metadata:
          name: frontend-service
        spec:
          type: NodePort
          selector: {app: frontend}
          ports:
          - {port: 80, targetPort: 8080, nodePort: 30080}
  - name: The backend asks for 30080 too
    apply:
      name: backend-service.yaml
      inline: |
        apiVersion: v1
        kind: Service
        metadata:
          name: backend-service
        spec:
          type: NodePort
          selector: {app: backend}
          ports:
          - {port: 80, targetPort: 8080, nodePort: 30080}
    expect:
      error: 'The Service "backend-service" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated'
  - name: Give the backend a nodePort of its own
    task:
      supplies: [Service/backend-service]
      hints:
        - Leave nodePort out and the API server chooses one.
      solution:
        name: backend-service.yaml
        inline: |
          apiVersion: v1
          kind: Service
          metadata:
            name: backend-service
          spec:
            type: NodePort
            selector: {app: backend}
            ports:
            - {port: 80, targetPort: 8080}
    expect:
      state:
        - service: backend-service
          band: dynamic
`

// A lesson, step by step: load it, start a session (the lab is built and
// the scenario's manifests applied), run each step and read its checks,
// show a task's hints one at a time, then look at the lab itself.
func Example() {
	ctx := context.Background()
	sc, err := scenarios.Parse("collision-lite.yaml", []byte(lesson), nil)
	if err != nil {
		fmt.Println(err) // every error names the file, the line and the key
		return
	}
	s, err := scenarios.NewSession(ctx, sc, scenarios.Options{Seed: 1})
	if err != nil {
		fmt.Println(err) // *scenarios.UnsupportedError: this machine cannot run it
		return
	}
	defer s.Close()

	for s.More() {
		r := s.Next(ctx)
		fmt.Printf("%s step %d: %s\n", r.Status, r.Index, r.Name)
		for _, c := range r.Checks {
			fmt.Printf("  %v %s\n", c.Pass, c.Check)
		}
	}

	// The task's hints, one at a time, as a student asks for them.
	task := 2
	for {
		h, ok := s.Hint(task)
		if !ok {
			break
		}
		fmt.Println("hint:", h)
	}

	// The lab behind the session is a *lab.Lab: its state is what a
	// student's screen shows.
	state := s.Lab().State()
	for _, name := range state.ServiceNames() {
		svc := state.Services[name]
		if svc.Type == "NodePort" {
			np := svc.Ports[0].NodePort
			fmt.Printf("%s: nodePort %s\n", name, band(np))
		}
	}
	// Output:
	// pass step 1: The frontend takes 30080
	//   true kubectl apply succeeds
	// pass step 2: The backend asks for 30080 too
	//   true kubectl apply fails with the exact error
	// pass step 3: Give the backend a nodePort of its own
	//   true kubectl apply succeeds
	//   true service backend-service: nodePort in the dynamic band
	// hint: Leave nodePort out and the API server chooses one.
	// backend-service: nodePort in the dynamic band
	// frontend-service: nodePort 30080, in the static band
}

// Grading: the student's manifests replace the task's solution. A student
// who copied the docs' backend on 30080 fails with the exact error, and
// the report says what was expected and observed.
func Example_check() {
	sc, _ := scenarios.Parse("collision-lite.yaml", []byte(lesson), nil)
	student := []byte(`apiVersion: v1
kind: Service
metadata:
  name: backend-service
spec:
  type: NodePort
  selector: {app: backend}
  ports:
  - {port: 80, targetPort: 8080, nodePort: 30080}
`)
	rep := scenarios.Run(context.Background(), sc, scenarios.Options{
		Check: true, Student: []lab.File{{Name: "student.yaml", Data: student}}, Seed: 1,
	})
	last := rep.Steps[len(rep.Steps)-1]
	for _, c := range last.Checks {
		if !c.Pass {
			fmt.Printf("✗ %s\n  expected: %s\n  observed: %s\n  hint: %s\n", c.Check, c.Expected, c.Observed, c.Hint)
		}
	}
	fmt.Println("exit status", rep.ExitCode())
	// Output:
	// ✗ kubectl apply succeeds
	//   expected: no error
	//   observed: The Service "backend-service" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated
	//   hint: Leave nodePort out and the API server chooses one.
	// ✗ service backend-service: nodePort in the dynamic band
	//   expected: service backend-service: nodePort in the dynamic band (30086-32767 of 30000-32767)
	//   observed: no service backend-service
	//   hint: Leave nodePort out and the API server chooses one.
	// exit status 1
}

// band says where a nodePort of the default range lies.
func band(np int32) string {
	switch {
	case np == 30080:
		return "30080, in the static band"
	case np >= 30086 && np <= 32767:
		return "in the dynamic band"
	}
	return fmt.Sprint(np)
}
