// Package kubectl prints Services, Pods and Endpoints, and API errors, byte
// for byte the way kubectl does, so what a student sees in nplab is what a
// real cluster would show them.
//
// Tables (`kubectl get`) are written through a tabwriter set up like
// kubectl's (cells padded to the widest plus 3 spaces, minimum width 6); AGE
// is apimachinery's duration.HumanDuration of now minus creationTimestamp.
// [GetServices] and [GetPods] follow the server-side table printers
// (pkg/printers/internalversion), [DescribeService] follows
// kubectl/pkg/describe (a tabwriter with 2 spaces of padding).
//
// # How kubectl prints an error
//
// [FormatError] applies the rule of kubectl's cmdutil.CheckErr
// (kubectl/pkg/cmd/util/helpers.go):
//
//   - an API error with reason Invalid is printed from its details, not its
//     message: `The Service "x" is invalid: <field>: <detail>` for one cause;
//     for several the first line ends in ": " and each cause follows on its own
//     `* ` line (duplicate causes dropped). The file name does not appear.
//   - any other API error is `Error from server (<Reason>): <message>`, where
//     kubectl has put `error when creating "FILE": ` in front of the message
//     (cmdutil.AddSourceToErr).
//   - anything else (a manifest that does not parse, say) is `error: <text>`.
//
// When one kubectl run collects several errors (two rejected objects in one
// apply), the aggregate is not unwrapped: every error, Invalid ones included,
// is printed on its own line in the `Error from server (...)` form.
// [FormatErrors] implements that.
package kubectl
