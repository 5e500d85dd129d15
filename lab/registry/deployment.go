package registry

import (
	"fmt"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// CreateDeployment is POST of an apps/v1 Deployment: defaults (replicas 1,
// RollingUpdate 25%/25%, revisionHistoryLimit 10, progressDeadlineSeconds
// 600, pod template defaults) → generation 1, empty status → validation →
// store. Errors name it as kube-apiserver does: `Deployment.apps "web" is
// invalid`, `deployments.apps "web" already exists`.
func (r *Registry) CreateDeployment(in *appsv1.Deployment) (*appsv1.Deployment, error) {
	return r.createDeployment(in, false)
}

// DryRunCreateDeployment is CreateDeployment with ?dryRun=All: defaulted and
// validated, returned, not stored.
func (r *Registry) DryRunCreateDeployment(in *appsv1.Deployment) (*appsv1.Deployment, error) {
	return r.createDeployment(in, true)
}

func (r *Registry) createDeployment(in *appsv1.Deployment, dryRun bool) (*appsv1.Deployment, error) {
	if in == nil {
		return nil, apierrors.NewBadRequest("no Deployment given")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	d := in.DeepCopy()
	r.beginCreateMeta(&d.ObjectMeta)
	SetDeploymentDefaults(d)
	d.Status = appsv1.DeploymentStatus{}
	d.Generation = 1
	if errs := r.validateDeployment(d); len(errs) > 0 {
		return nil, apierrors.NewInvalid(deploymentKind, d.Name, errs)
	}
	k := objKey(d.Namespace, d.Name)
	if old, ok := r.deployments[k]; ok {
		return nil, alreadyExists(deploymentsResource, d.Name, &old.ObjectMeta)
	}
	if dryRun {
		return d, nil
	}
	r.finishCreateMeta(&d.ObjectMeta)
	r.deployments[k] = d
	r.changed("Deployment", k)
	r.persist(deploymentKey(k), d)
	return d.DeepCopy(), nil
}

// UpdateDeployment is PUT of a whole Deployment (a scale is an update of
// spec.replicas). The selector is immutable; status is kept; generation
// goes up when the spec changes.
func (r *Registry) UpdateDeployment(in *appsv1.Deployment) (*appsv1.Deployment, error) {
	return r.updateDeployment(in, false)
}

// DryRunUpdateDeployment is UpdateDeployment with ?dryRun=All: it returns what the
// update would store and changes nothing.
func (r *Registry) DryRunUpdateDeployment(in *appsv1.Deployment) (*appsv1.Deployment, error) {
	return r.updateDeployment(in, true)
}

func (r *Registry) updateDeployment(in *appsv1.Deployment, dryRun bool) (*appsv1.Deployment, error) {
	if in == nil {
		return nil, apierrors.NewBadRequest("no Deployment given")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	d := in.DeepCopy()
	d.Namespace = nsOrDefault(d.Namespace)
	k := objKey(d.Namespace, d.Name)
	old, ok := r.deployments[k]
	if !ok {
		return nil, apierrors.NewNotFound(deploymentsResource, d.Name)
	}
	if err := checkRV(deploymentsResource, d.Name, d.ResourceVersion, old.ResourceVersion); err != nil {
		return nil, err
	}
	SetDeploymentDefaults(d)
	beginUpdateMeta(&d.ObjectMeta, &old.ObjectMeta)
	d.Status = old.Status
	if !equality.Semantic.DeepEqual(d.Spec, old.Spec) {
		d.Generation = old.Generation + 1
	}
	errs := apivalidation.ValidateObjectMetaUpdate(&d.ObjectMeta, &old.ObjectMeta, field.NewPath("metadata"))
	errs = append(errs, r.validateDeploymentSpec(&d.Spec, field.NewPath("spec"))...)
	if !equality.Semantic.DeepEqual(d.Spec.Selector, old.Spec.Selector) {
		errs = append(errs, field.Invalid(field.NewPath("spec").Child("selector"), r.val(d.Spec.Selector), "field is immutable"))
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(deploymentKind, d.Name, errs)
	}
	if equality.Semantic.DeepEqual(d, old) {
		return old.DeepCopy(), nil
	}
	if dryRun {
		return d, nil
	}
	d.ResourceVersion = r.nextRV()
	r.deployments[k] = d
	r.changed("Deployment", k)
	r.persist(deploymentKey(k), d)
	return d.DeepCopy(), nil
}

// UpdateDeploymentStatus is the status subresource the deployment
// controller writes (replicas, readyReplicas, observedGeneration,
// conditions): mutate gets a copy; only its status is kept.
func (r *Registry) UpdateDeploymentStatus(namespace, name string, mutate func(*appsv1.Deployment)) (*appsv1.Deployment, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := objKey(nsOrDefault(namespace), name)
	old, ok := r.deployments[k]
	if !ok {
		return nil, apierrors.NewNotFound(deploymentsResource, name)
	}
	work := old.DeepCopy()
	if mutate != nil {
		mutate(work)
	}
	d := old.DeepCopy()
	d.Status = work.Status
	if equality.Semantic.DeepEqual(d, old) {
		return old.DeepCopy(), nil
	}
	d.ResourceVersion = r.nextRV()
	r.deployments[k] = d
	r.changed("Deployment", k)
	r.persist(deploymentKey(k), d)
	return d.DeepCopy(), nil
}

// DeleteDeployment removes a Deployment (its pods are the caller's, as
// garbage collection is a controller's job).
func (r *Registry) DeleteDeployment(namespace, name string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := objKey(nsOrDefault(namespace), name)
	if _, ok := r.deployments[k]; !ok {
		return apierrors.NewNotFound(deploymentsResource, name)
	}
	delete(r.deployments, k)
	r.changed("Deployment", k)
	r.unpersist(deploymentKey(k))
	return nil
}

// validateDeployment is ValidateDeployment: metadata (DNS-1123 subdomain
// name), then the spec.
func (r *Registry) validateDeployment(d *appsv1.Deployment) field.ErrorList {
	allErrs := apivalidation.ValidateObjectMeta(&d.ObjectMeta, true, apivalidation.NameIsDNSSubdomain, field.NewPath("metadata"))
	return append(allErrs, r.validateDeploymentSpec(&d.Spec, field.NewPath("spec"))...)
}

// validateDeploymentSpec is ValidateDeploymentSpec, in its order.
func (r *Registry) validateDeploymentSpec(spec *appsv1.DeploymentSpec, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	replicas := int32(1)
	if spec.Replicas != nil {
		replicas = *spec.Replicas
	}
	allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(replicas), fldPath.Child("replicas"))...)
	if spec.Selector == nil {
		allErrs = append(allErrs, field.Required(fldPath.Child("selector"), ""))
	} else {
		allErrs = append(allErrs, metav1validation.ValidateLabelSelector(spec.Selector, metav1validation.LabelSelectorValidationOptions{}, fldPath.Child("selector"))...)
		if len(spec.Selector.MatchLabels)+len(spec.Selector.MatchExpressions) == 0 {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("selector"), r.val(spec.Selector), "empty selector is invalid for deployment"))
		}
	}
	selector, err := metav1.LabelSelectorAsSelector(spec.Selector)
	if err != nil {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("selector"), r.val(spec.Selector), "invalid label selector"))
	} else {
		allErrs = append(allErrs, r.validatePodTemplateForReplicaSet(spec, selector, fldPath.Child("template"))...)
	}
	allErrs = append(allErrs, r.validateDeploymentStrategy(&spec.Strategy, fldPath.Child("strategy"))...)
	allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(spec.MinReadySeconds), fldPath.Child("minReadySeconds"))...)
	if spec.RevisionHistoryLimit != nil {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(*spec.RevisionHistoryLimit), fldPath.Child("revisionHistoryLimit"))...)
	}
	if spec.ProgressDeadlineSeconds != nil {
		allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(*spec.ProgressDeadlineSeconds), fldPath.Child("progressDeadlineSeconds"))...)
		if *spec.ProgressDeadlineSeconds <= spec.MinReadySeconds {
			allErrs = append(allErrs, field.Invalid(fldPath.Child("progressDeadlineSeconds"), *spec.ProgressDeadlineSeconds, "must be greater than minReadySeconds"))
		}
	}
	return allErrs
}

// validatePodTemplateForReplicaSet is ValidatePodTemplateSpecForReplicaSet:
// the selector must match the template labels, the template is validated as
// a pod (labels under spec.template.labels, the spec under
// spec.template.spec), restartPolicy must be Always.
func (r *Registry) validatePodTemplateForReplicaSet(spec *appsv1.DeploymentSpec, selector labels.Selector, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	tpl := &spec.Template
	if !selector.Empty() && !selector.Matches(labels.Set(tpl.Labels)) {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("metadata", "labels"), r.val(tpl.Labels), "`selector` does not match template `labels`"))
	}
	allErrs = append(allErrs, metav1validation.ValidateLabels(tpl.Labels, fldPath.Child("labels"))...)
	allErrs = append(allErrs, apivalidation.ValidateAnnotations(tpl.Annotations, fldPath.Child("annotations"))...)
	allErrs = append(allErrs, r.validatePodSpec(&tpl.Spec, fldPath.Child("spec"))...)
	if tpl.Spec.RestartPolicy != "Always" {
		allErrs = append(allErrs, field.NotSupported(fldPath.Child("spec", "restartPolicy"), tpl.Spec.RestartPolicy, []string{"Always"}))
	}
	if tpl.Spec.ActiveDeadlineSeconds != nil {
		allErrs = append(allErrs, field.Forbidden(fldPath.Child("spec", "activeDeadlineSeconds"), "activeDeadlineSeconds in ReplicaSet is not Supported"))
	}
	return allErrs
}

func (r *Registry) validateDeploymentStrategy(st *appsv1.DeploymentStrategy, fldPath *field.Path) field.ErrorList {
	switch st.Type {
	case appsv1.RecreateDeploymentStrategyType:
		if st.RollingUpdate != nil {
			return field.ErrorList{field.Forbidden(fldPath.Child("rollingUpdate"), fmt.Sprintf("may not be specified when strategy `type` is '%s'", appsv1.RecreateDeploymentStrategyType))}
		}
	case appsv1.RollingUpdateDeploymentStrategyType:
		if st.RollingUpdate == nil {
			return field.ErrorList{field.Required(fldPath.Child("rollingUpdate"), "this should be defaulted and never be nil")}
		}
		return validateRollingUpdate(st.RollingUpdate, fldPath.Child("rollingUpdate"))
	default:
		return field.ErrorList{field.NotSupported(fldPath, r.val(st), []appsv1.DeploymentStrategyType{appsv1.RecreateDeploymentStrategyType, appsv1.RollingUpdateDeploymentStrategyType})}
	}
	return nil
}

func validateRollingUpdate(ru *appsv1.RollingUpdateDeployment, fldPath *field.Path) field.ErrorList {
	var allErrs field.ErrorList
	check := func(v *intstr.IntOrString, p *field.Path) {
		if v == nil {
			return
		}
		switch v.Type {
		case intstr.String:
			for _, msg := range validation.IsValidPercent(v.StrVal) {
				allErrs = append(allErrs, field.Invalid(p, v.StrVal, msg))
			}
			if n, err := strconv.Atoi(strings.TrimSuffix(v.StrVal, "%")); err == nil && n > 100 {
				allErrs = append(allErrs, field.Invalid(p, v.StrVal, "must not be greater than 100%"))
			}
		case intstr.Int:
			allErrs = append(allErrs, apivalidation.ValidateNonnegativeField(int64(v.IntValue()), p)...)
		}
	}
	check(ru.MaxUnavailable, fldPath.Child("maxUnavailable"))
	check(ru.MaxSurge, fldPath.Child("maxSurge"))
	if isZero(ru.MaxUnavailable) && isZero(ru.MaxSurge) {
		allErrs = append(allErrs, field.Invalid(fldPath.Child("maxUnavailable"), ru.MaxUnavailable.String(), "may not be 0 when `maxSurge` is 0"))
	}
	return allErrs
}

func isZero(v *intstr.IntOrString) bool {
	if v == nil {
		return false
	}
	if v.Type == intstr.Int {
		return v.IntVal == 0
	}
	return v.StrVal == "0%"
}
