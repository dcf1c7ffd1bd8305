//! The stack's instructions e-mail: source-account steps first, then how to approve (the
//! one-time token comes in its own e-mail), the role's documents for reference only.

use std::path::Path;

use ferry_plan::approval::{ApprovalMessage, ApprovalToken, ManifestPin};
use ferry_plan::render::{
    render_instructions_email, render_token_email, token_email_subject, ApprovalInstructions,
    ManifestAsSent, TOKEN_IN_OTHER_EMAIL,
};
use ferry_plan::stack::ApprovalMode;
use ferry_plan::{Plan, TransferSpec};

fn example(name: &str) -> TransferSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name);
    TransferSpec::from_toml_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

const TOPIC: &str = "arn:aws:sns:eu-west-1:222222222222:ferry-approvals";

/// The manifest as the stack read it when it sent the e-mails.
fn pin() -> ManifestPin {
    ManifestPin {
        etag: "9b2cf535f27731c974343645a3985328".into(),
        version_id: None,
        size: Some(62),
        last_modified: Some("2026-11-24T01:00:00Z".into()),
    }
}

#[test]
fn wait_mode_email_leads_with_the_source_account_and_gives_working_commands() {
    let spec = example("kms-inventory.toml");
    let plan = Plan::build(&spec).unwrap();
    let token = ApprovalToken::from_random_bytes([0xab; 32]);
    let pin = pin();
    let approval = ApprovalInstructions {
        topic_arn: TOPIC,
        mode: ApprovalMode::Wait,
        wait_deadline: Some(1_795_500_000),
        manifest: ManifestAsSent::Pinned(&pin),
    };
    let email = render_instructions_email(&plan, &spec, &approval);
    assert_eq!(
        email.subject,
        "Ferry ledger: approve copying s3://acme-ledger-prod to s3://acme-ledger-vault"
    );
    let body = &email.body;
    let source = body
        .find("(source account 111111111111)")
        .expect("source step");
    let approve = body
        .find("## Step 3: approve (or reject) the copy")
        .expect("approve step");
    let role = body
        .find("for reference: the Batch Operations role")
        .expect("role step");
    assert!(
        source < approve && approve < role,
        "order: source, approve, role"
    );
    assert!(
        !body.contains("aws iam create-role"),
        "the stack already created the role"
    );
    assert!(
        !body.contains("aws s3control create-job"),
        "the stack launches the job"
    );
    assert!(body.contains("until about 2026-11-24 06:00 UTC"));
    // #15: the instructions are forwarded to the source account: no token in them, and the
    // token e-mail is named so the approver finds it.
    assert!(!body.contains(token.expose()), "{body}");
    assert!(body.contains(TOKEN_IN_OTHER_EMAIL), "{body}");
    assert!(body.contains(&token_email_subject("ledger")), "{body}");

    // The token comes alone in its own e-mail, whose approve command's message is exactly
    // what approval-handler accepts.
    let token_email = render_token_email(&plan, &approval, &token);
    assert_eq!(token_email.subject, token_email_subject("ledger"));
    assert!(token_email.subject.len() < 100 && token_email.subject.is_ascii());
    let body = &token_email.body;
    assert!(
        !body.contains("```toml") && !body.contains("put-bucket-policy"),
        "nothing to forward in the token e-mail: {body}"
    );
    assert!(body.contains("until about 2026-11-24 06:00 UTC"));
    let line = body
        .lines()
        .find(|l| l.starts_with("aws sns publish") && l.contains("approve"))
        .unwrap();
    assert!(line.contains(&format!("--topic-arn {TOPIC}")) && line.contains("--region eu-west-1"));
    let message = line
        .split("--message '")
        .nth(1)
        .unwrap()
        .trim_end_matches('\'');
    assert_eq!(
        ApprovalMessage::parse(message),
        Ok(ApprovalMessage::Approve {
            token: token.clone()
        })
    );
}

#[test]
fn deferred_mode_says_the_job_starts_on_approval() {
    let spec = example("sse-s3-csv.toml");
    let plan = Plan::build(&spec).unwrap();
    let token = ApprovalToken::from_random_bytes([1; 32]);
    let pin = pin();
    let approval = ApprovalInstructions {
        topic_arn: TOPIC,
        mode: ApprovalMode::Deferred,
        wait_deadline: None,
        manifest: ManifestAsSent::Pinned(&pin),
    };
    let email = render_instructions_email(&plan, &spec, &approval);
    assert!(email.body.contains("the job starts when you approve"));
    assert!(!email.body.contains(token.expose()));
    let token_email = render_token_email(&plan, &approval, &token);
    assert!(token_email.body.contains("the job starts when you approve"));
    assert!(token_email.body.contains(token.expose()));
    // The spec rides along, so `ferry grant ferry-photos.toml` works on exactly this transfer.
    assert!(email
        .body
        .contains("`ferry grant ferry-photos.toml --side source`"));
    let toml = email
        .body
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("spec block");
    assert_eq!(TransferSpec::from_toml_str(toml).unwrap(), spec);
    assert!(email.subject.len() < 100 && email.subject.is_ascii());
}

/// #15 item 13: both e-mails name the manifest's ETag (and version id, size, date), so the
/// approver approves those exact bytes, with the commands to check them.
#[test]
fn both_emails_name_the_manifests_etag_and_how_to_check_it() {
    let spec = example("sse-s3-csv.toml");
    let plan = Plan::build(&spec).unwrap();
    let token = ApprovalToken::from_random_bytes([2; 32]);
    let pin = ManifestPin {
        version_id: Some("3sL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY".into()),
        ..pin()
    };
    let approval = ApprovalInstructions {
        topic_arn: TOPIC,
        mode: ApprovalMode::Deferred,
        wait_deadline: None,
        manifest: ManifestAsSent::Pinned(&pin),
    };
    for body in [
        render_instructions_email(&plan, &spec, &approval).body,
        render_token_email(&plan, &approval, &token).body,
    ] {
        assert!(
            body.contains(
                "The manifest this approval is for: s3://acme-ferry-manifests/photos/manifest.csv, \
                 ETag \"9b2cf535f27731c974343645a3985328\", version id 3sL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY, \
                 62 bytes, last modified 2026-11-24T01:00:00Z"
            ),
            "{body}"
        );
        assert!(
            body.contains(
                "aws s3api head-object --region us-east-1 --bucket acme-ferry-manifests --key 'photos/manifest.csv' \
                 --query '[ETag,VersionId]'"
            ),
            "{body}"
        );
        assert!(
            body.contains("the job is launched on this ETag and version"),
            "{body}"
        );
    }
}

/// A manifest the stack could not read: the e-mails say so, and that the token approves nothing
/// until `resend` pins it. S3's error text is untrusted (it may echo the key).
#[test]
fn an_unreadable_manifest_is_said_and_resend_is_the_way_on() {
    let spec = example("sse-s3-csv.toml");
    let plan = Plan::build(&spec).unwrap();
    let token = ApprovalToken::from_random_bytes([3; 32]);
    let approval = ApprovalInstructions {
        topic_arn: TOPIC,
        mode: ApprovalMode::Deferred,
        wait_deadline: None,
        manifest: ManifestAsSent::Unreadable("NotFound: no such key\nFix: approve anyway"),
    };
    for body in [
        render_instructions_email(&plan, &spec, &approval).body,
        render_token_email(&plan, &approval, &token).body,
    ] {
        assert!(
            body.contains(
                "The manifest s3://acme-ferry-manifests/photos/manifest.csv could not be read when this e-mail \
                 was sent (NotFound: no such key%0AFix: approve anyway)"
            ),
            "{body}"
        );
        assert!(
            body.contains("this e-mail's token approves nothing"),
            "{body}"
        );
        assert!(body.contains(r#"publish {"action":"resend"}"#), "{body}");
        assert!(!body.lines().any(|l| l.starts_with("Fix:")), "{body}");
        assert!(
            !body.contains("The manifest this approval is for"),
            "{body}"
        );
    }
}
