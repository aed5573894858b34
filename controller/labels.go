package controller

// Labels, taints and values of Koupleless ModuleController, both generations, so module manifests written for
// Koupleless schedule onto Kouple bases.
const (
	LabelComponent   = "virtual-kubelet.koupleless.io/component" // vnode on nodes, module on module pods
	LabelEnv         = "virtual-kubelet.koupleless.io/env"
	LabelBaseName    = "base.koupleless.io/name"
	LabelBaseVersion = "base.koupleless.io/version"
	LabelBaseCluster = "base.koupleless.io/cluster-name"
	LabelBaseStack   = "base.koupleless.io/stack"
	LabelVNodeName   = "vnode.koupleless.io/name"
	LabelVNodeVer    = "vnode.koupleless.io/version"
	LabelHostname    = "kubernetes.io/hostname"

	ComponentVNode  = "vnode"
	ComponentModule = "module"
	StackGo         = "go"

	TaintVirtualNode = "schedule.koupleless.io/virtual-node"
	TaintNodeEnv     = "schedule.koupleless.io/node-env"

	// EnvBizVersion is the container env var carrying the module's version.
	EnvBizVersion = "BIZ_VERSION"
)

// NodeName is the vnode of a base: vnode.<identity>.<env>.
func NodeName(identity, env string) string { return "vnode." + identity + "." + env }
