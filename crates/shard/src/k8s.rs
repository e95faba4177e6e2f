//! Kubernetes launcher: one manifest (a `v1` `List`, JSON, which `kubectl
//! apply -f` takes as it takes YAML) with
//! - a ConfigMap holding the effective `config.toml`;
//! - an Indexed Job (`completionMode: Indexed`, `completions` = shards,
//!   `parallelism` = the throttle, `backoffLimitPerIndex`): pod `I` gets
//!   `JOB_COMPLETION_INDEX=I` and runs `backforth run --num-shards N`;
//! - a merge Job running `backforth shard merge --wait`, which waits for every
//!   shard's marker (Kubernetes has no `afterok` between Jobs).
//!
//! The run folder must be on a volume every pod mounts (a ReadWriteMany
//! PersistentVolumeClaim, mounted at `mount_path`).

use serde_json::{json, Value};

/// Settings of the manifest (what `backforth shard k8s manifest` takes).
#[derive(Debug, Clone)]
pub struct K8sOptions {
    pub name: String,
    pub image: String,
    pub num_shards: u32,
    /// Pods at once.
    pub parallelism: u32,
    /// Retries per index before the index counts as failed.
    pub backoff_limit_per_index: u32,
    /// PersistentVolumeClaim holding the run folder (and inputs), and where it is mounted.
    /// ReadWriteMany claim mounted at `mount_path` (inputs, and the run
    /// folder unless it is in object storage); `None`: no shared volume.
    pub pvc: Option<String>,
    pub mount_path: String,
    /// The run folder as the pods see it (under `mount_path`).
    pub out: String,
    /// Container resources, e.g. cpu "4", memory "16Gi", and GPUs per pod.
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub gpus: Option<u32>,
    /// Environment variable names passed from a Secret of the same name as
    /// the job (e.g. `BACKFORTH_API_KEY`): never written into the manifest.
    pub secret_env: Vec<String>,
}

/// The manifest for `config_toml` (see the module docs).
pub fn manifest(config_toml: &str, o: &K8sOptions) -> Value {
    let mut resources = serde_json::Map::new();
    let mut limits = serde_json::Map::new();
    if let Some(c) = &o.cpu {
        resources.insert("requests".into(), json!({"cpu": c}));
        limits.insert("cpu".into(), json!(c));
    }
    if let Some(m) = &o.memory {
        limits.insert("memory".into(), json!(m));
        resources
            .entry("requests")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("object")
            .insert("memory".into(), json!(m));
    }
    if let Some(g) = o.gpus {
        limits.insert("nvidia.com/gpu".into(), json!(g));
    }
    if !limits.is_empty() {
        resources.insert("limits".into(), Value::Object(limits));
    }
    let env: Vec<Value> = o
        .secret_env
        .iter()
        .map(|k| json!({"name": k, "valueFrom": {"secretKeyRef": {"name": o.name, "key": k}}}))
        .collect();
    // the run folder on a shared volume, or (object storage) a scratch
    // emptyDir for the node-local mirror each pod works in
    let mut volumes =
        vec![json!({"name": "config", "configMap": {"name": format!("{}-config", o.name)}})];
    let mut mounts =
        vec![json!({"name": "config", "mountPath": "/etc/backforth", "readOnly": true})];
    if let Some(pvc) = &o.pvc {
        volumes.push(json!({"name": "data", "persistentVolumeClaim": {"claimName": pvc}}));
        mounts.push(json!({"name": "data", "mountPath": o.mount_path}));
    }
    let mut env = env;
    if crate::remote::is_url(&o.out) {
        volumes.push(json!({"name": "work", "emptyDir": {}}));
        mounts.push(json!({"name": "work", "mountPath": "/work"}));
        env.push(json!({"name": "BACKFORTH_WORK_DIR", "value": "/work"}));
    }
    let container = |args: Vec<String>| {
        json!({
            "name": "backforth",
            "image": o.image,
            "command": ["backforth"],
            "args": args,
            "env": env,
            "resources": resources,
            "volumeMounts": mounts,
        })
    };
    let shards = container(vec![
        "run".into(),
        "--config".into(),
        "/etc/backforth/config.toml".into(),
        "--out".into(),
        o.out.clone(),
        "--num-shards".into(),
        o.num_shards.to_string(),
    ]);
    let merge = container(vec![
        "shard".into(),
        "merge".into(),
        "--out".into(),
        o.out.clone(),
        "--wait".into(),
    ]);
    json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": format!("{}-config", o.name)},
                "data": {"config.toml": config_toml}
            },
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": o.name, "labels": {"app": "backforth"}},
                "spec": {
                    "completionMode": "Indexed",
                    "completions": o.num_shards,
                    "parallelism": o.parallelism.min(o.num_shards).max(1),
                    "backoffLimitPerIndex": o.backoff_limit_per_index,
                    "maxFailedIndexes": o.num_shards,
                    "template": {"spec": {
                        "restartPolicy": "Never",
                        "containers": [shards],
                        "volumes": volumes,
                    }}
                }
            },
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": format!("{}-merge", o.name), "labels": {"app": "backforth"}},
                "spec": {
                    "backoffLimit": 2,
                    "template": {"spec": {
                        "restartPolicy": "Never",
                        "containers": [merge],
                        "volumes": volumes,
                    }}
                }
            }
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexed_job_runs_every_shard_and_merge_waits() {
        let o = K8sOptions {
            name: "bf".into(),
            image: "ghcr.io/x/backforth:1".into(),
            num_shards: 8,
            parallelism: 3,
            backoff_limit_per_index: 2,
            pvc: Some("corpus".into()),
            mount_path: "/data".into(),
            out: "/data/run".into(),
            cpu: Some("4".into()),
            memory: Some("16Gi".into()),
            gpus: None,
            secret_env: vec!["BACKFORTH_API_KEY".into()],
        };
        let m = manifest("[run]\n", &o);
        let items = m["items"].as_array().unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0]["data"]["config.toml"], "[run]\n");
        let job = &items[1]["spec"];
        assert_eq!(job["completionMode"], "Indexed");
        assert_eq!(job["completions"], 8);
        assert_eq!(job["parallelism"], 3);
        let c = &job["template"]["spec"]["containers"][0];
        assert_eq!(c["args"][6], "8");
        assert_eq!(c["resources"]["limits"]["memory"], "16Gi");
        assert_eq!(
            c["env"][0]["valueFrom"]["secretKeyRef"]["key"],
            "BACKFORTH_API_KEY"
        );
        assert!(
            c["env"][0].get("value").is_none(),
            "secrets are referenced, never inlined"
        );
        let merge = &items[2]["spec"]["template"]["spec"]["containers"][0]["args"];
        assert_eq!(merge[0], "shard");
        assert_eq!(merge[1], "merge");
        assert_eq!(merge[4], "--wait");
    }

    #[test]
    fn a_run_folder_in_object_storage_needs_no_shared_volume() {
        let o = K8sOptions {
            name: "bf".into(),
            image: "img".into(),
            num_shards: 2,
            parallelism: 2,
            backoff_limit_per_index: 1,
            pvc: None,
            mount_path: "/data".into(),
            out: "s3://bucket/run".into(),
            cpu: None,
            memory: None,
            gpus: None,
            secret_env: vec!["AWS_ACCESS_KEY_ID".into(), "AWS_SECRET_ACCESS_KEY".into()],
        };
        let m = manifest("", &o);
        let spec = &m["items"][1]["spec"]["template"]["spec"];
        let vols: Vec<&str> = spec["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        assert_eq!(vols, ["config", "work"]);
        assert!(spec["volumes"][1]["emptyDir"].is_object());
        let env = spec["containers"][0]["env"].as_array().unwrap();
        assert_eq!(env.len(), 3);
        assert_eq!(
            env[2],
            serde_json::json!({"name": "BACKFORTH_WORK_DIR", "value": "/work"})
        );
        assert!(
            env[..2].iter().all(|e| e.get("value").is_none()),
            "keys come from the Secret"
        );
        assert_eq!(spec["containers"][0]["args"][4], "s3://bucket/run");
    }
}
