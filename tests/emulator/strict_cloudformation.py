"""CloudFormation as sam deploy meets it.

moto serves CloudFormation and S3, but it does not run the
AWS::Serverless-2016-10-31 transform (it would create nothing for a SAM
function), a stack created through a change set keeps no outputs (sam deploy's
managed bucket stack is then refused as unhealthy), and a few resource types
have no CloudFormation support at all, so a stack naming them fails. This
layer expands the transform with the SAM translator, as CloudFormation does
before creating resources, gives a stack created from a change set its
outputs, gives a layer version the reference CloudFormation gives it (its ARN)
and a function its layers and architectures, and stands in for the unsupported
types (recorded, with the
references and attributes CloudFormation reports, but not created in the
emulated service). It is installed only where the SAM translator is (the SAM
CLI's environment).
"""

import copy
from urllib.parse import urlparse

from moto.cloudformation import models, responses
from moto.core.common_models import CloudFormationModel

SERVERLESS = "AWS::Serverless-2016-10-31"


def _transformed(template, parameters, region, account):
    """`template` (a dict) with the SAM transform applied, when it declares it."""
    declared = template.get("Transform") if isinstance(template, dict) else None
    declared = declared if isinstance(declared, list) else [declared]
    if SERVERLESS not in declared:
        return template
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=region))
    values = dict(parameters or {})
    values.update({"AWS::Region": region, "AWS::AccountId": account, "AWS::Partition": "aws"})
    return translator.translate(copy.deepcopy(template), parameter_values=values,
                                get_managed_policy_map=lambda: {})


class _StandIn:
    """A resource of a type moto's CloudFormation cannot create."""

    KIND = ""
    SERVICE = ""
    RESOURCE = ""

    def __init__(self, name, properties, account_id, region_name):
        self.name = name
        self.properties = properties
        self.arn = f"arn:aws:{self.SERVICE}:{region_name}:{account_id}:{self.RESOURCE}{name}"

    @classmethod
    def cloudformation_type(cls):
        return cls.KIND

    @staticmethod
    def cloudformation_name_type():
        return ""

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        return cls(resource_name, cloudformation_json.get("Properties", {}), account_id, region_name)

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name):
        return self.arn

    @property
    def physical_resource_id(self):
        return self.name


# Direct subclasses of CloudFormationModel: moto's registry lists only those.
class _Alarm(_StandIn, CloudFormationModel):
    # moto's model registry files each model under the service its module names.
    __module__ = "moto.cloudformation.standins"
    KIND, SERVICE, RESOURCE = "AWS::CloudWatch::Alarm", "cloudwatch", "alarm:"


class _QueryDefinition(_StandIn, CloudFormationModel):
    __module__ = "moto.cloudformation.standins"
    KIND, SERVICE, RESOURCE = "AWS::Logs::QueryDefinition", "logs", "query-definition:"


class _QueuePolicy(_StandIn, CloudFormationModel):
    __module__ = "moto.cloudformation.standins"
    KIND, SERVICE, RESOURCE = "AWS::SQS::QueuePolicy", "sqs", "queue-policy:"


def install():
    try:
        import samtranslator  # noqa: F401
    except ImportError:
        return

    from moto.cloudformation import parsing

    parsing.get_model_list.cache_clear()
    parsing.get_model_map.cache_clear()
    parsing.get_name_type_map.cache_clear()

    change_set_parse = models.ChangeSet._parse_template

    def parse_change_set(self):
        change_set_parse(self)
        stack = self.stack
        self.template_dict = _transformed(
            self.template_dict, self.parameters, stack.region_name, stack.account_id
        )

    models.ChangeSet._parse_template = parse_change_set

    stack_parse = models.Stack._parse_template

    def parse_stack(self):
        stack_parse(self)
        self.template_dict = _transformed(
            self.template_dict, self.parameters, self.region_name, self.account_id
        )

    models.Stack._parse_template = parse_stack

    execute = models.CloudFormationBackend.execute_change_set

    def execute_change_set(self, change_set_name, stack_name=None):
        execute(self, change_set_name, stack_name)
        change_set = self.change_sets.get(change_set_name) or next(
            (c for c in self.change_sets.values() if c.change_set_name == change_set_name), None
        )
        if change_set is not None:
            stack = self.stacks[change_set.stack_id]
            # What CloudFormation reports for a created stack: its template's outputs.
            stack.template_dict = change_set.template_dict
            stack.output_map = stack._create_output_map()

    models.CloudFormationBackend.execute_change_set = execute_change_set

    # Ref of a layer version is its ARN in CloudFormation; moto has none, so a
    # function naming the layer would get no layer at all.
    from moto.awslambda.models import LambdaFunction, LayerVersion

    LayerVersion.physical_resource_id = property(lambda self: self.arn)

    # moto's CloudFormation drops a function's Layers and Architectures.
    create_function = LambdaFunction.create_from_cloudformation_json.__func__

    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id,
                                        region_name, **kwargs):
        function = create_function(cls, resource_name, cloudformation_json, account_id,
                                   region_name, **kwargs)
        properties = cloudformation_json["Properties"]
        # An `!If` that chose AWS::NoValue reaches moto as None: no element.
        layers = [arn for arn in properties.get("Layers") or [] if arn]
        if layers:
            function.layers = function._get_layers_data(layers)
        if properties.get("Architectures"):
            function.architectures = properties["Architectures"]
        return function

    LambdaFunction.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)

    # sam deploy names the template by the S3 endpoint it was given: this
    # emulator's loopback address, path-style (moto reads "127" as the bucket).
    from_url = responses.get_stack_from_s3_url

    def get_stack_from_s3_url(template_url, account_id, partition):
        parts = urlparse(template_url)
        if parts.hostname in ("127.0.0.1", "::1"):
            from moto.s3.models import s3_backends

            bucket, key = parts.path.lstrip("/").split("/", 1)
            return s3_backends[account_id][partition].get_object(bucket, key).value.decode("utf-8")
        return from_url(template_url, account_id=account_id, partition=partition)

    responses.get_stack_from_s3_url = get_stack_from_s3_url
