// CloudFormation template loading and intrinsic-function resolution for offline policy proofs.
//
// loadTemplate() parses template.yaml with the short-form tags (!Sub, !Ref, !GetAtt, ...) turned
// into their long forms ({"Fn::Sub": ...}); an unknown tag fails the load. A Resolver resolves
// intrinsics for one set of parameter values, pseudo parameters and deterministic fake physical
// ids of the template's own resources. Anything it does not model (an intrinsic, a resource
// type's Ref or attribute, a missing parameter) throws: a guess could make a policy look
// narrower or wider than it is.

import { readFileSync } from 'node:fs'
import { parseDocument } from 'yaml'

/** Short-form tag → long-form key. !GetAtt's scalar form "A.B" becomes ["A", "B"]. */
const SHORT_FORMS = {
  Ref: 'Ref',
  Condition: 'Condition',
  Sub: 'Fn::Sub',
  GetAtt: 'Fn::GetAtt',
  If: 'Fn::If',
  Equals: 'Fn::Equals',
  Not: 'Fn::Not',
  And: 'Fn::And',
  Or: 'Fn::Or',
  Join: 'Fn::Join',
  Select: 'Fn::Select',
  Split: 'Fn::Split',
  FindInMap: 'Fn::FindInMap',
  Base64: 'Fn::Base64',
  Cidr: 'Fn::Cidr',
  GetAZs: 'Fn::GetAZs',
  ImportValue: 'Fn::ImportValue',
  Length: 'Fn::Length',
  ToJsonString: 'Fn::ToJsonString',
  Transform: 'Fn::Transform',
}

const CUSTOM_TAGS = Object.entries(SHORT_FORMS).flatMap(([short, long]) => [
  { tag: `!${short}`, resolve: (s) => ({ [long]: short === 'GetAtt' ? splitGetAtt(s) : s }) },
  { tag: `!${short}`, collection: 'seq', resolve: (seq) => ({ [long]: seq.toJSON() }) },
  { tag: `!${short}`, collection: 'map', resolve: (map) => ({ [long]: map.toJSON() }) },
])

function splitGetAtt(s) {
  const dot = s.indexOf('.')
  if (dot < 1) throw new Error(`!GetAtt "${s}" is not <LogicalId>.<Attribute>`)
  return [s.slice(0, dot), s.slice(dot + 1)]
}

/** The template as plain JSON-like data with long-form intrinsics. Fails on any YAML problem. */
export function loadTemplate(path) {
  const doc = parseDocument(readFileSync(path, 'utf8'), { customTags: CUSTOM_TAGS, maxAliasCount: -1 })
  const problems = [...doc.errors, ...doc.warnings].map((e) => e.message)
  if (problems.length) throw new Error(`${path}: ${problems.join('\n')}`)
  return doc.toJS()
}

/** The value of `Ref: AWS::NoValue`: removed from the list or map that holds it. */
export const NO_VALUE = Symbol('AWS::NoValue')

/**
 * Deterministic fake physical ids, by resource type: `ref` is what Ref returns, `attrs` what
 * GetAtt returns. `env` holds account, region, partition, stackName; `props` the resource's
 * resolved-on-demand properties (a function taking a property name).
 */
const PHYSICAL = {
  'AWS::S3::Bucket': (id, env) => {
    const name = `${env.stackName}-${id}-fake0000`.toLowerCase()
    return { ref: name, attrs: { Arn: `arn:${env.partition}:s3:::${name}`, DomainName: `${name}.s3.amazonaws.com` } }
  },
  'AWS::SNS::Topic': (id, env) => {
    const name = `${env.stackName}-${id}-FAKE0000`
    return { ref: `arn:${env.partition}:sns:${env.region}:${env.account}:${name}`, attrs: { TopicName: name, TopicArn: `arn:${env.partition}:sns:${env.region}:${env.account}:${name}` } }
  },
  'AWS::SQS::Queue': (id, env) => {
    const name = `${env.stackName}-${id}-FAKE0000`
    return {
      ref: `https://sqs.${env.region}.amazonaws.com/${env.account}/${name}`,
      attrs: { Arn: `arn:${env.partition}:sqs:${env.region}:${env.account}:${name}`, QueueName: name, QueueUrl: `https://sqs.${env.region}.amazonaws.com/${env.account}/${name}` },
    }
  },
  'AWS::Serverless::Function': (id, env, prop) => {
    const name = prop('FunctionName') ?? `${env.stackName}-${id}-FAKE0000`
    return { ref: name, attrs: { Arn: `arn:${env.partition}:lambda:${env.region}:${env.account}:function:${name}` } }
  },
  // The SAM transform's output, for the cross-check against SAM itself.
  'AWS::Lambda::Function': (id, env, prop) => PHYSICAL['AWS::Serverless::Function'](id, env, prop),
  'AWS::Logs::LogGroup': (id, env, prop) => {
    const name = prop('LogGroupName') ?? `${env.stackName}-${id}-FAKE0000`
    return { ref: name, attrs: { Arn: `arn:${env.partition}:logs:${env.region}:${env.account}:log-group:${name}:*` } }
  },
  'AWS::IAM::Role': (id, env, prop) => {
    const name = prop('RoleName') ?? `${env.stackName}-${id}-FAKE0000`
    return { ref: name, attrs: { Arn: `arn:${env.partition}:iam::${env.account}:role${prop('Path') ?? '/'}${name}`, RoleId: `AROAFAKE${id.toUpperCase()}` } }
  },
  'AWS::IAM::ManagedPolicy': (id, env, prop) => {
    const name = prop('ManagedPolicyName') ?? `${env.stackName}-${id}-FAKE0000`
    return { ref: `arn:${env.partition}:iam::${env.account}:policy${prop('Path') ?? '/'}${name}`, attrs: {} }
  },
  'AWS::Events::Rule': (id, env, prop) => {
    const name = prop('Name') ?? `${env.stackName}-${id}-FAKE0000`
    return { ref: name, attrs: { Arn: `arn:${env.partition}:events:${env.region}:${env.account}:rule/${name}` } }
  },
  // Ref is the state machine's ARN; Name its name (a generated one when StateMachineName is unset).
  'AWS::StepFunctions::StateMachine': (id, env, prop) => {
    const name = prop('StateMachineName') ?? `${id}-FAKE0000`
    const arn = `arn:${env.partition}:states:${env.region}:${env.account}:stateMachine:${name}`
    return { ref: arn, attrs: { Arn: arn, Name: name } }
  },
  'AWS::CloudFormation::WaitConditionHandle': (id, env) => ({
    ref: `https://cloudformation-waitcondition-${env.region}.s3.amazonaws.com/fake/${env.stackName}/${id}`,
    attrs: {},
  }),
}

export function partitionOf(region) {
  if (region.startsWith('cn-')) return 'aws-cn'
  if (region.startsWith('us-gov-')) return 'aws-us-gov'
  return 'aws'
}

/**
 * Resolves intrinsics of `template` for `parameters` (name → string; template defaults fill the
 * rest) in `env` ({account, region, stackName}; the partition follows the region).
 * `extraResources` adds resources the transform creates (e.g. SAM's `<Function>Role`).
 */
export class Resolver {
  constructor(template, parameters, env, extraResources = {}) {
    this.template = template
    this.env = { ...env, partition: partitionOf(env.region) }
    this.resources = { ...(template.Resources ?? {}), ...extraResources }
    this.params = {}
    for (const [name, decl] of Object.entries(template.Parameters ?? {})) {
      const value = name in parameters ? parameters[name] : decl.Default
      if (value === undefined) throw new Error(`parameter ${name} has no default and no value in this parameter set`)
      if (decl.AllowedValues && !decl.AllowedValues.map(String).includes(String(value)))
        throw new Error(`parameter ${name} = "${value}" is not one of its AllowedValues ${JSON.stringify(decl.AllowedValues)}`)
      if (decl.AllowedPattern && !new RegExp(decl.AllowedPattern).test(String(value)))
        throw new Error(`parameter ${name} = "${value}" does not match its AllowedPattern ${decl.AllowedPattern}`)
      this.params[name] = String(value)
    }
    for (const name of Object.keys(parameters))
      if (!(name in this.params)) throw new Error(`parameter set names ${name}, which the template does not declare`)
    this.conditionCache = new Map()
  }

  pseudo(name) {
    const { account, region, partition, stackName } = this.env
    switch (name) {
      case 'AWS::AccountId':
        return account
      case 'AWS::Region':
        return region
      case 'AWS::Partition':
        return partition
      case 'AWS::StackName':
        return stackName
      case 'AWS::StackId':
        // A test that made the stack on moto passes its real id (env.stackId).
        return this.env.stackId ?? `arn:${partition}:cloudformation:${region}:${account}:stack/${stackName}/00000000-0000-4000-8000-000000000000`
      case 'AWS::URLSuffix':
        return partition === 'aws-cn' ? 'amazonaws.com.cn' : 'amazonaws.com'
      case 'AWS::NoValue':
        return NO_VALUE
      default:
        throw new Error(`pseudo parameter ${name} is not modeled`)
    }
  }

  /** Whether the named condition holds. */
  condition(name) {
    if (!this.conditionCache.has(name)) {
      const decl = this.template.Conditions?.[name]
      if (decl === undefined) throw new Error(`condition ${name} is not declared in Conditions`)
      this.conditionCache.set(name, undefined) // cycle guard
      const value = this.resolve(decl)
      if (typeof value !== 'boolean') throw new Error(`condition ${name} did not evaluate to true or false`)
      this.conditionCache.set(name, value)
    }
    const value = this.conditionCache.get(name)
    if (value === undefined) throw new Error(`condition ${name} refers to itself`)
    return value
  }

  /** Whether a resource exists in this parameter set (its Condition holds, or it has none). */
  exists(logicalId) {
    const r = this.resources[logicalId]
    return r !== undefined && (r.Condition === undefined || this.condition(r.Condition))
  }

  physical(logicalId) {
    if (!this.exists(logicalId)) throw new Error(`${logicalId} is not a resource of the template in this parameter set`)
    const r = this.resources[logicalId]
    const make = PHYSICAL[r.Type]
    if (!make) throw new Error(`no fake physical id modeled for ${logicalId} (${r.Type}): add its type to PHYSICAL in cfn.mjs`)
    const prop = (name) => {
      const v = r.Properties?.[name]
      return v === undefined ? undefined : this.resolve(v)
    }
    return make(logicalId, this.env, prop)
  }

  ref(name) {
    if (name.startsWith('AWS::')) return this.pseudo(name)
    if (name in this.params) return this.params[name]
    return this.physical(name).ref
  }

  getAtt(logicalId, attr) {
    const value = this.physical(logicalId).attrs[attr]
    if (value === undefined) throw new Error(`GetAtt ${logicalId}.${attr} (${this.resources[logicalId].Type}) is not modeled: add it to PHYSICAL in cfn.mjs`)
    return value
  }

  sub(text, vars = {}) {
    if (typeof text !== 'string') throw new Error(`Fn::Sub needs a string, got ${JSON.stringify(text)}`)
    return text.replace(/\$\{(!?)([^}]*)\}/g, (_, bang, name) => {
      if (bang) return `\${${name}}`
      const n = name.trim()
      if (n in vars) return this.scalar(vars[n], `Fn::Sub variable ${n}`)
      if (n.includes('.') && !n.startsWith('AWS::')) {
        const [id, ...attr] = n.split('.')
        return this.getAtt(id, attr.join('.'))
      }
      return this.scalar(this.ref(n), `Fn::Sub \${${n}}`)
    })
  }

  scalar(value, where) {
    if (typeof value === 'string' || typeof value === 'number') return String(value)
    throw new Error(`${where} resolved to ${String(value)}, not a string`)
  }

  /** The fully resolved value of `node` (NO_VALUE at the top when it is AWS::NoValue). */
  resolve(node) {
    if (Array.isArray(node)) return node.map((n) => this.resolve(n)).filter((v) => v !== NO_VALUE)
    if (node === null || typeof node !== 'object') return node
    const keys = Object.keys(node)
    if (keys.length === 1 && (keys[0] === 'Ref' || keys[0] === 'Condition' || keys[0].startsWith('Fn::'))) return this.intrinsic(keys[0], node[keys[0]])
    const out = {}
    for (const [k, v] of Object.entries(node)) {
      const r = this.resolve(v)
      if (r !== NO_VALUE) out[k] = r
    }
    return out
  }

  intrinsic(fn, arg) {
    const list = (n) => {
      if (!Array.isArray(arg) || arg.length !== n) throw new Error(`${fn} takes a list of ${n}, got ${JSON.stringify(arg)}`)
      return arg
    }
    switch (fn) {
      case 'Ref':
        return this.ref(arg)
      case 'Condition':
        return this.condition(arg)
      case 'Fn::GetAtt': {
        const [id, attr] = typeof arg === 'string' ? splitGetAtt(arg) : list(2)
        return this.getAtt(id, this.resolve(attr))
      }
      case 'Fn::Sub':
        if (typeof arg === 'string') return this.sub(arg)
        return this.sub(list(2)[0], this.resolve(arg[1]))
      case 'Fn::If': {
        const [cond, yes, no] = list(3)
        return this.resolve(this.condition(cond) ? yes : no)
      }
      case 'Fn::Equals': {
        const [a, b] = list(2).map((x) => this.resolve(x))
        return JSON.stringify(a) === JSON.stringify(b) || (typeof a !== 'object' && typeof b !== 'object' && String(a) === String(b))
      }
      case 'Fn::Not':
        return !this.bool(list(1)[0])
      case 'Fn::And':
      case 'Fn::Or': {
        if (!Array.isArray(arg) || arg.length < 2 || arg.length > 10) throw new Error(`${fn} takes 2 to 10 conditions`)
        const values = arg.map((c) => this.bool(c))
        return fn === 'Fn::And' ? values.every(Boolean) : values.some(Boolean)
      }
      case 'Fn::Join': {
        const [delim, items] = list(2)
        const values = this.resolve(items)
        if (!Array.isArray(values)) throw new Error(`Fn::Join needs a list, got ${JSON.stringify(values)}`)
        return values.map((v) => this.scalar(v, 'Fn::Join item')).join(delim)
      }
      case 'Fn::Select': {
        const [index, items] = list(2).map((x) => this.resolve(x))
        const i = Number(index)
        if (!Array.isArray(items) || !Number.isInteger(i) || i < 0 || i >= items.length) throw new Error(`Fn::Select index ${index} out of ${JSON.stringify(items)}`)
        return items[i]
      }
      case 'Fn::Split': {
        const [delim, text] = list(2)
        return this.scalar(this.resolve(text), 'Fn::Split source').split(delim)
      }
      case 'Fn::FindInMap': {
        const [map, top, second] = list(3).map((x) => this.resolve(x))
        const value = this.template.Mappings?.[map]?.[top]?.[second]
        if (value === undefined) throw new Error(`Fn::FindInMap [${map}, ${top}, ${second}] is not in Mappings`)
        return value
      }
      default:
        throw new Error(`intrinsic ${fn} is not modeled by the policy tests (cfn.mjs): model it or keep it out of IAM-relevant properties`)
    }
  }

  bool(node) {
    const v = this.resolve(node)
    if (typeof v !== 'boolean') throw new Error(`expected a condition, got ${JSON.stringify(node)}`)
    return v
  }
}
