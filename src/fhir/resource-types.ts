/**
 * The resource type names of FHIR R4 (4.0.1): what a reader accepts as `resourceType`.
 *
 * Source: the R4 model data that ships with HL7's `fhirpath` package (5.2.2,
 * `fhirpath/fhir-context/r4/type2Parent.json`, generated from the R4 StructureDefinitions): every
 * type whose ancestry reaches `Resource`, less the abstract `DomainResource`, 146 names. The list
 * is written out rather than derived at load time so that reading a file does not load the whole
 * FHIRPath model; `resource-types.test.ts` checks that the two still agree.
 */

/** Every concrete FHIR R4 (4.0.1) resource type name, e.g. `Patient`, `Observation`, `Bundle`. */
export const R4_RESOURCE_TYPES: ReadonlySet<string> = new Set([
  'Account', 'ActivityDefinition', 'AdverseEvent', 'AllergyIntolerance', 'Appointment',
  'AppointmentResponse', 'AuditEvent', 'Basic', 'Binary', 'BiologicallyDerivedProduct',
  'BodyStructure', 'Bundle', 'CapabilityStatement', 'CarePlan', 'CareTeam', 'CatalogEntry',
  'ChargeItem', 'ChargeItemDefinition', 'Claim', 'ClaimResponse', 'ClinicalImpression',
  'CodeSystem', 'Communication', 'CommunicationRequest', 'CompartmentDefinition', 'Composition',
  'ConceptMap', 'Condition', 'Consent', 'Contract', 'Coverage', 'CoverageEligibilityRequest',
  'CoverageEligibilityResponse', 'DetectedIssue', 'Device', 'DeviceDefinition', 'DeviceMetric',
  'DeviceRequest', 'DeviceUseStatement', 'DiagnosticReport', 'DocumentManifest',
  'DocumentReference', 'EffectEvidenceSynthesis', 'Encounter', 'Endpoint', 'EnrollmentRequest',
  'EnrollmentResponse', 'EpisodeOfCare', 'EventDefinition', 'Evidence', 'EvidenceVariable',
  'ExampleScenario', 'ExplanationOfBenefit', 'FamilyMemberHistory', 'Flag', 'Goal',
  'GraphDefinition', 'Group', 'GuidanceResponse', 'HealthcareService', 'ImagingStudy',
  'Immunization', 'ImmunizationEvaluation', 'ImmunizationRecommendation', 'ImplementationGuide',
  'InsurancePlan', 'Invoice', 'Library', 'Linkage', 'List', 'Location', 'Measure', 'MeasureReport',
  'Media', 'Medication', 'MedicationAdministration', 'MedicationDispense', 'MedicationKnowledge',
  'MedicationRequest', 'MedicationStatement', 'MedicinalProduct', 'MedicinalProductAuthorization',
  'MedicinalProductContraindication', 'MedicinalProductIndication', 'MedicinalProductIngredient',
  'MedicinalProductInteraction', 'MedicinalProductManufactured', 'MedicinalProductPackaged',
  'MedicinalProductPharmaceutical', 'MedicinalProductUndesirableEffect', 'MessageDefinition',
  'MessageHeader', 'MolecularSequence', 'NamingSystem', 'NutritionOrder', 'Observation',
  'ObservationDefinition', 'OperationDefinition', 'OperationOutcome', 'Organization',
  'OrganizationAffiliation', 'Parameters', 'Patient', 'PaymentNotice', 'PaymentReconciliation',
  'Person', 'PlanDefinition', 'Practitioner', 'PractitionerRole', 'Procedure', 'Provenance',
  'Questionnaire', 'QuestionnaireResponse', 'RelatedPerson', 'RequestGroup', 'ResearchDefinition',
  'ResearchElementDefinition', 'ResearchStudy', 'ResearchSubject', 'RiskAssessment',
  'RiskEvidenceSynthesis', 'Schedule', 'SearchParameter', 'ServiceRequest', 'Slot', 'Specimen',
  'SpecimenDefinition', 'StructureDefinition', 'StructureMap', 'Subscription', 'Substance',
  'SubstanceNucleicAcid', 'SubstancePolymer', 'SubstanceProtein', 'SubstanceReferenceInformation',
  'SubstanceSourceMaterial', 'SubstanceSpecification', 'SupplyDelivery', 'SupplyRequest', 'Task',
  'TerminologyCapabilities', 'TestReport', 'TestScript', 'ValueSet', 'VerificationResult',
  'VisionPrescription',
]);

/** The R4 names by their lower-case form, to suggest the right spelling of a miscased one. */
let byLowerCase: Map<string, string> | undefined;

/** Whether `name` is a concrete FHIR R4 resource type (case-sensitive, as FHIR JSON is). */
export function isResourceType(name: string): boolean {
  return R4_RESOURCE_TYPES.has(name);
}

/**
 * The R4 type name that `name` spells with other capitals (`patient` → `Patient`), or undefined.
 */
export function resourceTypeIgnoringCase(name: string): string | undefined {
  if (byLowerCase === undefined) {
    byLowerCase = new Map();
    for (const t of R4_RESOURCE_TYPES) byLowerCase.set(t.toLowerCase(), t);
  }
  return byLowerCase.get(name.toLowerCase());
}
