//! What people receive: an SQS queue subscribed to an SNS topic with raw message delivery, so a
//! test reads back exactly the bodies the functions published.

use aws_config::SdkConfig;
use aws_sdk_sqs::types::QueueAttributeName;

pub struct Inbox {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl Inbox {
    /// Creates the queue `queue_name` and subscribes it to `topic_arn`.
    pub async fn subscribe(config: &SdkConfig, topic_arn: &str, queue_name: &str) -> Inbox {
        let sqs = aws_sdk_sqs::Client::new(config);
        let queue_url = sqs
            .create_queue()
            .queue_name(queue_name)
            .send()
            .await
            .expect("create the inbox queue")
            .queue_url()
            .expect("queue URL")
            .to_string();
        let queue_arn = sqs
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("queue attributes")
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .expect("queue ARN");
        aws_sdk_sns::Client::new(config)
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(queue_arn)
            .attributes("RawMessageDelivery", "true")
            .send()
            .await
            .expect("subscribe the inbox to the topic");
        Inbox { sqs, queue_url }
    }

    /// Every message waiting, in the order SQS hands them out; they are consumed.
    pub async fn messages(&self) -> Vec<String> {
        let mut bodies = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(10)
                .send()
                .await
                .expect("receive from the inbox");
            let batch: Vec<String> = out
                .messages()
                .iter()
                .filter_map(|m| m.body().map(str::to_string))
                .collect();
            if batch.is_empty() {
                return bodies;
            }
            bodies.extend(batch);
        }
    }
}
