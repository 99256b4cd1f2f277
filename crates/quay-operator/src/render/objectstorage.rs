//! The `objectstorage` component: an ObjectBucketClaim `<reg>-quay-datastore` that NooBaa (OpenShift Data
//! Foundation) provisions. The bucket's host and credentials come back through [`crate::render::ClusterFacts`]
//! and feed the `DistributedStorage` field group.

use std::collections::BTreeMap;

use super::context::RenderContext;
use super::meta;
use super::object::DesiredObject;
use crate::api::{ComponentKind, ObjectBucketClaim, ObjectBucketClaimSpec};

/// The NooBaa storage class and bucket class every managed registry bucket uses.
const STORAGE_CLASS: &str = "openshift-storage.noobaa.io";
const BUCKET_CLASS: &str = "noobaa-default-bucket-class";

pub fn render(ctx: &RenderContext<'_>, out: &mut Vec<DesiredObject>) {
    if !ctx.managed(ComponentKind::ObjectStorage) || !ctx.input.cluster.object_bucket_claims {
        return;
    }
    out.push(DesiredObject::ObjectBucketClaim(ObjectBucketClaim {
        metadata: meta::object_meta(ctx, "quay-datastore", "quay-datastore"),
        spec: ObjectBucketClaimSpec {
            generate_bucket_name: Some("quay-datastore".to_owned()),
            storage_class_name: Some(STORAGE_CLASS.to_owned()),
            additional_config: Some(BTreeMap::from([(
                "bucketclass".to_owned(),
                BUCKET_CLASS.to_owned(),
            )])),
        },
        status: None,
    }));
}
