import { Page } from '../components/ui';
// Built in the next commits.
export function ModelsPage(_props: Record<string, string>) { return <Page title="ModelsPage"><p>Not built yet.</p></Page>; }
export function ModelPage(_props: Record<string, string>) { return <Page title="ModelPage"><p>Not built yet.</p></Page>; }
export function VersionPage(_props: Record<string, string>) { return <Page title="VersionPage"><p>Not built yet.</p></Page>; }
export function ComparePage(_props: Record<string, string>) { return <Page title="ComparePage"><p>Not built yet.</p></Page>; }
